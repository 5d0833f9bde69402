"""Step 6, publish: model versions and the new comparisons, in the transaction that records it.

The rows are written together with the step's "succeeded" (see pipeline._finish), after the
round's ownership was checked under a lock: a worker that lost its lease registers nothing, and a
takeover that finds the step done does not register again.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.models import Campaign, Comparison, ComparisonItem, ModelVersion, Prompt, Response
from app.worker.pipeline import RoundContext, StepResult
from app.worker.training import policy_name
from trainer.schema import ImportRecord

# New comparisons come before the campaign's older ones in raters' "Next".
NEW_PRIORITY_BOOST = 1


def _versions(session: Session, ctx: RoundContext) -> tuple[ModelVersion, ModelVersion]:
    out = ctx.outputs
    rm = ModelVersion(
        name=f"round-{ctx.round_id}-reward", kind="reward", parent_id=out["reward"]["parent_id"],
        round_id=ctx.round_id, path=out["reward"]["path"],
        metrics={k: v for k, v in out["reward"].items() if k not in ("path", "from", "parent_id")},
    )  # fmt: skip
    policy = ModelVersion(
        name=policy_name(ctx), kind="policy", parent_id=out["policy"]["parent_id"],
        round_id=ctx.round_id, path=out["policy"]["path"], published=out["gate"]["passed"],
        metrics={"policy": out["policy"]["last"], "gate": {k: v for k, v in out["gate"].items()},
                 "reward_model": rm.name},
    )  # fmt: skip
    session.add_all([rm, policy])
    session.flush()
    return rm, policy


def _version_of(label: str, policy: ModelVersion, ctx: RoundContext) -> int | None:
    """The new policy's id for its responses; a head-to-head's others are the current policy's
    (None when that is the base model, which has no version row)."""
    return policy.id if label == policy.name else ctx.outputs["policy"]["parent_id"]


def _comparisons(
    session: Session,
    ctx: RoundContext,
    policy: ModelVersion,
    records: list[ImportRecord],
    scores: list[list[float]],
) -> dict[str, float]:
    """Insert the new comparisons; the reward model's score of each new response, by its id."""
    campaign = session.get_one(Campaign, ctx.campaign_id)
    rng = random.Random(ctx.round_id)
    scored: list[tuple[Response, float]] = []
    for record, record_scores in zip(records, scores, strict=True):
        prompt = session.get(Prompt, int(record.external_id or 0))
        if prompt is None or prompt.campaign_id != campaign.id:
            continue  # the prompt was deleted since the snapshot
        responses = [
            Response(prompt_id=prompt.id, text=r.text, model_label=r.model_version,
                     model_version_id=_version_of(r.model_version, policy, ctx))
            for r in record.responses
        ]  # fmt: skip
        scored += zip(responses, record_scores, strict=True)
        rng.shuffle(responses)  # no position carries a signal
        comparison = Comparison(
            campaign_id=campaign.id, prompt_id=prompt.id, round_id=ctx.round_id,
            priority=campaign.priority + NEW_PRIORITY_BOOST,
        )  # fmt: skip
        comparison.items = [ComparisonItem(position=i, response=r) for i, r in enumerate(responses)]
        session.add(comparison)
    session.flush()
    return {str(response.id): score for response, score in scored}


def _jsonl(path: str) -> list[Any]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def publish(ctx: RoundContext) -> StepResult:
    """Register the reward model and the policy; insert the new comparisons when it passed."""
    records: list[ImportRecord] = []
    scores: list[list[float]] = []
    generated = ctx.outputs["generate"]
    if "path" in generated:
        records = [ImportRecord.model_validate(row) for row in _jsonl(generated["path"])]
        scores = list(_jsonl(generated["scores"]))
    metrics: dict[str, Any] = {}

    def commit(session: Session) -> None:
        rm, policy = _versions(session, ctx)
        by_id = _comparisons(session, ctx, policy, records, scores) if policy.published else {}
        k = max((len(r.responses) for r in records), default=1)
        metrics.update(reward_version_id=rm.id, policy_version_id=policy.id,
                       published=policy.published, comparisons_added=len(by_id) // k,
                       reward_scores=by_id)  # fmt: skip

    return StepResult(metrics, commit=commit)

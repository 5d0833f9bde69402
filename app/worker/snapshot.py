"""Step 1, snapshot: the campaign's judgments up to a fixed id, through the REST export's code.

Written as ranking records (the export's `ranking` shape), split by prompt with a hash of the
prompt text: a prompt held out once stays held out in every later round, so the reward model's
eval split never leaks into its training data as the campaign grows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.models import Comparison, Judgment, Prompt
from app.schemas.export import ExportQuery
from app.services.export import export_bytes
from app.worker.pipeline import RoundContext, StepResult, _owned
from app.worker.runner import StepFailed


def held_out(prompt: str, *, fraction: float, seed: int) -> bool:
    """Whether `prompt` is in the eval split: a stable hash of its text, not a random draw."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _fix_snapshot_id(ctx: RoundContext) -> int:
    """The round's snapshot id: the campaign's latest judgment, fixed on the first attempt."""
    with ctx.factory() as session, session.begin():
        found = _owned(session, ctx)
        if found.snapshot_judgment_id is None:
            latest = session.scalar(
                select(func.max(Judgment.id))
                .join(Comparison, Comparison.id == Judgment.comparison_id)
                .where(Comparison.campaign_id == ctx.campaign_id)
            )
            if latest is None:
                raise StepFailed("the campaign has no judgments to train on yet")
            found.snapshot_judgment_id = latest
        return found.snapshot_judgment_id


def _export(ctx: RoundContext, snapshot_id: int) -> list[dict[str, Any]]:
    query = ExportQuery(shape="ranking", campaign_id=ctx.campaign_id, max_judgment_id=snapshot_id)
    with ctx.factory() as session, session.begin():
        data = b"".join(export_bytes(session, query=query))
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _campaign_prompts(ctx: RoundContext) -> list[tuple[int, str, int]]:
    """(id, text, comparisons so far) of every prompt of the campaign, fewest comparisons first."""
    count = func.count(Comparison.id)
    stmt = (
        select(Prompt.id, Prompt.text, count)
        .outerjoin(Comparison, Comparison.prompt_id == Prompt.id)
        .where(Prompt.campaign_id == ctx.campaign_id)
        .group_by(Prompt.id, Prompt.text)
        .order_by(count, Prompt.id.desc())
    )
    with ctx.factory() as session:
        return [(pid, text, n) for pid, text, n in session.execute(stmt)]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)


def _balance(prompts: list[str], held: set[str]) -> set[str]:
    """Keep both sides non-empty when there are two prompts or more."""
    if len(prompts) >= 2 and not held:
        return {prompts[0]}
    if len(prompts) >= 2 and held == set(prompts):
        return held - {prompts[0]}
    return held


def snapshot(ctx: RoundContext) -> StepResult:
    """Export the snapshot; write train/eval records, policy, held-out and generation prompts."""
    snapshot_id = _fix_snapshot_id(ctx)
    records = _export(ctx, snapshot_id)
    rankable = [r for r in records if not r["not_rankable"]]
    if not rankable:
        raise StepFailed(f"no rankable judgments up to id {snapshot_id}: nothing to learn from")
    cfg = ctx.config
    texts = sorted({r["prompt"] for r in rankable})
    held = {p for p in texts if held_out(p, fraction=cfg.eval_fraction, seed=cfg.seed)}
    held = _balance(texts, held) if cfg.eval_fraction > 0 else set()
    out = ctx.partial("snapshot")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _write(out / "train.jsonl", [r for r in rankable if r["prompt"] not in held])
    _write(out / "eval.jsonl", [r for r in rankable if r["prompt"] in held])
    unsafe = [
        {"prompt": r["prompt"], "response": resp["text"]}
        for r in rankable
        for resp in r["responses"]
        if "unsafe" in resp["flags"]
    ]
    _write(out / "unsafe.jsonl", unsafe)
    prompts = _campaign_prompts(ctx)
    policy = [{"prompt": t} for _, t, _ in prompts if t not in held]
    _write(out / "policy_prompts.jsonl", policy)
    _write(out / "heldout_prompts.jsonl", [{"prompt": t} for t in sorted(held)] or policy)
    new_first = prompts[: cfg.generate_prompts]
    _write(
        out / "generate_prompts.jsonl",
        [{"prompt": t, "external_id": str(pid)} for pid, t, _ in new_first],
    )
    shutil.rmtree(ctx.path("snapshot"), ignore_errors=True)
    out.rename(ctx.path("snapshot"))
    return StepResult(
        {
            "snapshot_judgment_id": snapshot_id,
            "judgments": len(records),
            "train_records": len(rankable) - sum(r["prompt"] in held for r in rankable),
            "eval_records": sum(r["prompt"] in held for r in rankable),
            "eval_prompts": len(held),
            "unsafe_responses": len(unsafe),
            "policy_prompts": len(policy),
            "generate_prompts": len(new_first),
        }
    )

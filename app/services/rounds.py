"""Training rounds: queue one for a worker to claim, cancel one, read them back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import ModelVersion, RoundStep, TrainingRound, utcnow
from app.models.rounds import ROUND_METHODS, RoundMethod
from app.services.audit import record_event
from app.services.campaigns import get_campaign
from trainer.schema import MAX_RESPONSES

FINISHED = ("succeeded", "failed", "cancelled")


class RoundConfig(BaseModel):
    """A round's hyperparameters: the admin form, the API body and the worker read this one model."""

    model_config = ConfigDict(extra="forbid")

    eval_fraction: float = Field(
        0.2, ge=0, le=0.5, description="Share of prompts held out (reward eval and the gate)."
    )
    reward_epochs: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Reward model passes over the data (empty: the trainer sizes the budget "
        "from the data, stopping early on the held-out loss).",
    )
    reward_lr: float = Field(5e-5, gt=0, le=1, description="Reward model learning rate.")
    reward_batch_size: int | None = Field(
        None,
        ge=1,
        le=512,
        description="Comparisons per reward batch; empty: the trainer's own (~8 implied pairs a "
        "batch whatever K, so four-way data gets enough optimizer steps).",
    )
    reward_max_length: int = Field(
        512,
        ge=32,
        le=8192,
        description="Tokens per reward-model sequence; a longer prompt loses tokens from the left "
        "(its start), the response is kept.",
    )
    require_learned: bool = Field(
        True, description="Stop the round when the reward model did not beat chance."
    )
    policy_steps: int = Field(20, ge=1, le=100_000, description="Policy optimisation steps.")
    policy_lr: float = Field(1e-6, gt=0, le=1, description="Policy learning rate.")
    kl_coef: float = Field(0.05, ge=0, le=10, description="KL penalty to the reference.")
    prompts_per_step: int = Field(4, ge=1, le=1024, description="Prompts per policy step.")
    rollouts_per_prompt: int = Field(4, ge=2, le=64, description="RLOO/PPO samples per prompt.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Most tokens per response.")
    responses_per_prompt: int = Field(
        2, ge=2, le=MAX_RESPONSES, description="K: the new policy's responses per new comparison."
    )
    head_to_head: bool = Field(
        False,
        description="Head-to-head: the current policy's K responses beside the new policy's.",
    )
    generate_prompts: int = Field(
        50, ge=1, le=100_000, description="Campaign prompts to write new comparisons for."
    )
    gate_prompts: int = Field(
        64, ge=1, le=10_000, description="Held-out prompts the gate answers with both policies."
    )
    gate_max_kl: float = Field(
        20.0, ge=0, description="Keep (not publish) a policy whose KL to the current exceeds this."
    )
    gate_min_reward_delta: float = Field(
        -1.0, description="Keep a policy whose mean reward falls more than this below the current."
    )
    gate_max_length_ratio: float = Field(
        3.0,
        gt=0,
        description="Keep a policy whose mean length exceeds the current's by this factor.",
    )
    gate_max_unsafe_share: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Keep a policy when more of its responses than this score below "
        "physician-flagged unsafe ones.",
    )
    seed: int = Field(0, ge=0, description="Seed for the split, training and sampling.")

    @field_validator("head_to_head")
    @classmethod
    def _head_to_head_fits(cls, on: bool, info: ValidationInfo) -> bool:
        k = info.data.get("responses_per_prompt")
        if on and k is not None and 2 * k > MAX_RESPONSES:
            raise ValueError(
                f"a head-to-head shows K new and K current responses: K at most "
                f"{MAX_RESPONSES // 2}, not {k}"
            )
        return on


def round_config(raw: dict[str, Any]) -> RoundConfig:
    """The round's config validated, or a ValidationFailed naming the field."""
    try:
        return RoundConfig.model_validate(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "config"
        raise ValidationFailed(f"{field}: {first['msg']}", field=field) from exc


def check_method(method: str) -> None:
    """Refuse a policy method the worker does not run."""
    if method not in ROUND_METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(ROUND_METHODS)}", field="method")


def queue_round(
    session: Session,
    *,
    campaign_id: int | None,
    method: str = RoundMethod.RLOO,
    config: dict[str, Any] | None = None,
    actor_id: int | None = None,
    trigger: str = "admin",
    schedule_id: int | None = None,
) -> TrainingRound:
    """A queued round; the worker that claims it fixes its data snapshot."""
    check_method(method)
    if campaign_id is not None:
        get_campaign(session, campaign_id=campaign_id)
    checked = round_config(dict(config or {}))
    training_round = TrainingRound(
        campaign_id=campaign_id,
        method=method,
        config=checked.model_dump(exclude_unset=True),
        status="queued",
        created_by_id=actor_id,
        trigger=trigger,
        schedule_id=schedule_id,
    )
    session.add(training_round)
    session.flush()
    record_event(
        session,
        action="round.queue",
        actor_id=actor_id,
        target_type="training_round",
        target_id=training_round.id,
        details={"method": method, "trigger": trigger},
    )
    return training_round


def get_round(session: Session, *, round_id: int) -> TrainingRound:
    """A round by id, or NotFound."""
    found = session.get(TrainingRound, round_id)
    if found is None:
        raise NotFound(f"no training round with id {round_id}", field="round_id")
    return found


def cancel_round(session: Session, *, round_id: int, actor_id: int | None) -> TrainingRound:
    """Cancel a queued round now; a running one stops at its next step boundary."""
    stmt = select(TrainingRound).where(TrainingRound.id == round_id).with_for_update()
    found = session.scalar(stmt.execution_options(populate_existing=True))
    if found is None:
        raise NotFound(f"no training round with id {round_id}", field="round_id")
    if found.status in FINISHED:
        raise Conflict(f"round {round_id} already {found.status}", field="round_id")
    found.cancel_requested = True
    if found.status == "queued":
        found.status, found.finished_at = "cancelled", utcnow()
    session.flush()
    record_event(
        session,
        action="round.cancel",
        actor_id=actor_id,
        target_type="training_round",
        target_id=round_id,
        details={"status": found.status},
    )
    return found


def list_rounds(session: Session, *, limit: int = 100) -> list[TrainingRound]:
    """The newest rounds first."""
    stmt = select(TrainingRound).order_by(TrainingRound.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def round_steps(session: Session, *, round_id: int) -> list[RoundStep]:
    """A round's recorded steps in pipeline order."""
    stmt = select(RoundStep).where(RoundStep.round_id == round_id).order_by(RoundStep.position)
    return list(session.scalars(stmt))


def model_versions(session: Session, *, round_id: int | None = None) -> list[ModelVersion]:
    """Model versions, newest first (one round's when `round_id` is given)."""
    stmt = select(ModelVersion).order_by(ModelVersion.id.desc())
    if round_id is not None:
        stmt = stmt.where(ModelVersion.round_id == round_id)
    return list(session.scalars(stmt))


def latest_model(session: Session, *, campaign_id: int, kind: str) -> ModelVersion | None:
    """The campaign's newest published model of `kind` (its current policy or reward model)."""
    stmt = (
        select(ModelVersion)
        .join(TrainingRound, TrainingRound.id == ModelVersion.round_id)
        .where(
            TrainingRound.campaign_id == campaign_id,
            ModelVersion.kind == kind,
            ModelVersion.published,
        )
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)

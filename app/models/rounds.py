"""The loop's bookkeeping: training rounds, their steps, schedules and the model versions they make."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, one_of

ROUND_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MODEL_KINDS = ("policy", "reward", "sft", "reference")
# The pipeline of one round, in order; a takeover resumes after the last succeeded step.
STEP_NAMES = ("snapshot", "reward", "policy", "gate", "generate", "publish")
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped")


class RoundMethod(StrEnum):
    """How a round optimises the policy against the reward model."""

    RLOO = "rloo"
    PPO = "ppo"
    DPO = "dpo"


ROUND_METHODS = tuple(m.value for m in RoundMethod)  # for membership tests of plain strings


class TrainingRound(CreatedAt, Base):
    """One turn of the loop, claimed by a worker under a lease it keeps alive by heartbeat."""

    __tablename__ = "training_rounds"
    __table_args__ = (
        CheckConstraint(one_of("status", ROUND_STATUSES), name="status_known"),
        CheckConstraint(one_of("method", ROUND_METHODS), name="method_known"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        Index("ix_training_rounds_status_created", "status", "created_at"),
        # A schedule fires once per due time (cron) or judgment threshold, whoever evaluates it.
        UniqueConstraint("schedule_id", "trigger"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    method: Mapped[str] = mapped_column(String(16), default=RoundMethod.RLOO)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Judgments with id <= this are the round's data: a fixed snapshot, reproducible.
    snapshot_judgment_id: Mapped[int | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    stage: Mapped[str] = mapped_column(String(64), default="")
    progress: Mapped[float] = mapped_column(default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Set by an admin; the worker stops at the next step boundary.
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    # What fired it: "admin", "api", "cron:<due time>" or "judgments:<last judgment id>".
    trigger: Mapped[str] = mapped_column(String(64), default="admin")


class RoundStep(Base):
    """One recorded step of a round: status, start and end, metrics and the tail of its log."""

    __tablename__ = "round_steps"
    __table_args__ = (
        UniqueConstraint("round_id", "name"),
        CheckConstraint(one_of("name", STEP_NAMES), name="name_known"),
        CheckConstraint(one_of("status", STEP_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("training_rounds.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    position: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)


class Schedule(CreatedAt, Base):
    """Queues rounds by a cron expression or after every N new judgments."""

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("(cron IS NULL) <> (every_n_judgments IS NULL)", name="one_trigger"),
        CheckConstraint(
            "every_n_judgments IS NULL OR every_n_judgments > 0", name="every_n_positive"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    cron: Mapped[str | None] = mapped_column(String(100))
    every_n_judgments: Mapped[int | None]
    method: Mapped[str] = mapped_column(String(16), default=RoundMethod.RLOO)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    last_fired_at: Mapped[datetime | None]
    last_judgment_id: Mapped[int | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ModelVersion(CreatedAt, Base):
    """A checkpoint a round produced (or an imported base), with its lineage and metrics."""

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint("kind IN ('policy', 'reward', 'sft', 'reference')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    round_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_rounds.id", ondelete="SET NULL")
    )
    path: Mapped[str] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # False for a policy the gate kept back: registered (its files are complete) but never served.
    published: Mapped[bool] = mapped_column(default=True)

"""A round as recorded steps: each runs once, is recorded, and a takeover resumes after the last.

A step does its work outside any transaction (minutes of training must not hold a database lock),
then the pipeline records it in one short transaction that first checks the round is still ours,
together with whatever rows the step writes (`StepResult.commit`). A worker that lost its lease
therefore writes nothing, and publishing happens exactly once.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.models import RoundStep, TrainingRound, utcnow
from app.models.rounds import STEP_NAMES
from app.services.rounds import RoundConfig, round_config
from app.worker.lease import LeaseKeeper
from app.worker.runner import LeaseLost, StepFailed, tail

log = logging.getLogger("prefloop.worker")


@dataclass
class StepResult:
    """What a step reports: metrics, and rows to write in the transaction that records it."""

    metrics: dict[str, Any]
    commit: Callable[[Session], None] | None = None
    skipped: bool = False


@dataclass
class RoundContext:
    """Everything a step reads: the round's identity, config, directory and earlier steps."""

    round_id: int
    campaign_id: int
    method: str
    config: RoundConfig
    dir: Path
    factory: sessionmaker[Session]
    lease: LeaseKeeper
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def path(self, step: str) -> Path:
        """Where a step's complete output lies (renamed into place when done)."""
        return self.dir / step

    def partial(self, step: str) -> Path:
        """A step's scratch directory; a resumed step starts it afresh."""
        return self.dir / f"{step}.partial"

    def log_path(self, step: str) -> Path:
        """The step's log file."""
        return self.dir / "logs" / f"{step}.log"

    def note(self, step: str, message: str) -> None:
        """Append a worker message to the step's log (it shows in the log tail)."""
        self.log_path(step).parent.mkdir(parents=True, exist_ok=True)
        with self.log_path(step).open("a", encoding="utf-8") as fh:
            fh.write(f"[worker] {message}\n")


Step = Callable[[RoundContext], StepResult]


def _owned(session: Session, ctx: RoundContext) -> TrainingRound:
    """The round, locked, if this worker still holds it; else LeaseLost."""
    if session.get_bind().dialect.name == "sqlite":  # take the write lock before reading
        session.execute(
            update(TrainingRound)
            .where(TrainingRound.id == ctx.round_id)
            .values(status=TrainingRound.status)
        )
    stmt = select(TrainingRound).where(TrainingRound.id == ctx.round_id).with_for_update()
    found = session.scalar(stmt.execution_options(populate_existing=True))
    if found is None or found.status != "running" or found.worker_id != ctx.lease.worker_id:
        raise LeaseLost(f"round {ctx.round_id} is no longer held by {ctx.lease.worker_id}")
    return found


def _steps(session: Session, round_id: int) -> dict[str, RoundStep]:
    rows = session.scalars(select(RoundStep).where(RoundStep.round_id == round_id)).all()
    return {row.name: row for row in rows}


def _prepare(ctx: RoundContext) -> dict[str, RoundStep]:
    """Create the round's step rows once; read back what earlier attempts completed."""
    with ctx.factory() as session, session.begin():
        _owned(session, ctx)
        steps = _steps(session, ctx.round_id)
        for position, name in enumerate(STEP_NAMES):
            if name not in steps:
                steps[name] = RoundStep(round_id=ctx.round_id, name=name, position=position)
                session.add(steps[name])
        session.flush()
        for name, row in steps.items():
            if row.status in ("succeeded", "skipped"):
                ctx.outputs[name] = dict(row.metrics)
        return steps


def _start(ctx: RoundContext, name: str) -> None:
    with ctx.factory() as session, session.begin():
        found = _owned(session, ctx)
        found.stage = name
        step = _steps(session, ctx.round_id)[name]
        step.status, step.started_at, step.finished_at, step.error = "running", utcnow(), None, None


def _finish(ctx: RoundContext, name: str, result: StepResult) -> None:
    with ctx.factory() as session, session.begin():
        found = _owned(session, ctx)
        if result.commit is not None:
            result.commit(session)
        step = _steps(session, ctx.round_id)[name]
        step.status = "skipped" if result.skipped else "succeeded"
        step.finished_at, step.metrics = utcnow(), result.metrics
        step.log_tail = tail(ctx.log_path(name))
        found.progress = (STEP_NAMES.index(name) + 1) / len(STEP_NAMES)
    ctx.outputs[name] = result.metrics


def summary(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The round's headline figures, kept on its row for the rounds list."""
    published = outputs.get("publish", {})
    gate = outputs.get("gate", {})
    return {
        "outcome": "published" if published.get("published") else "kept",
        "gate_reasons": gate.get("reasons", []),
        "reward_eval_accuracy": outputs.get("reward", {}).get("eval_accuracy"),
        "mean_reward_new": gate.get("mean_reward_new"),
        "kl_new_to_current": gate.get("kl_new_to_current"),
        "comparisons_added": published.get("comparisons_added", 0),
        "policy_version_id": published.get("policy_version_id"),
        "reward_version_id": published.get("reward_version_id"),
    }


def _end(
    ctx: RoundContext, status: str, *, step: str | None = None, error: str | None = None
) -> None:
    """Finish the round (failed steps carry the reason and the log tail; the rest are skipped)."""
    with ctx.factory() as session, session.begin():
        found = _owned(session, ctx)
        found.status, found.finished_at, found.error = status, utcnow(), error
        found.lease_expires_at = None
        if status == "succeeded":
            found.progress, found.metrics = 1.0, summary(ctx.outputs)
        for row in _steps(session, ctx.round_id).values():
            if row.name == step and status == "failed":
                row.status, row.error, row.finished_at = "failed", error, utcnow()
                row.log_tail = tail(ctx.log_path(row.name))
            elif row.status in ("pending", "running"):
                row.status = "skipped"


def run_round(ctx: RoundContext, steps: dict[str, Step]) -> str:
    """Run the round's remaining steps in order; returns its final status (or 'lost')."""
    try:
        recorded = _prepare(ctx)
        for name in STEP_NAMES:
            if recorded[name].status in ("succeeded", "skipped"):
                continue
            ctx.lease.beat()
            if ctx.lease.lost.is_set():
                raise LeaseLost("lease lost")
            if ctx.lease.cancel.is_set():
                _end(ctx, "cancelled", error=f"cancelled by an admin before the {name} step")
                return "cancelled"
            _start(ctx, name)
            try:
                result = steps[name](ctx)
            except (StepFailed, LeaseLost):
                raise
            except Exception as exc:  # bad data, NaN, a bug: the round fails, the worker goes on
                ctx.note(name, traceback.format_exc())
                raise StepFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
            _finish(ctx, name, result)
            log.info("round %s: %s %s", ctx.round_id, name, "skipped" if result.skipped else "done")
        _end(ctx, "succeeded")
        return "succeeded"
    except StepFailed as failure:
        current = next((n for n in STEP_NAMES if n not in ctx.outputs), None)
        log.warning("round %s failed at %s: %s", ctx.round_id, current, failure)
        _end(ctx, "failed", step=current, error=str(failure))
        return "failed"
    except LeaseLost as lost:
        log.warning("round %s: %s", ctx.round_id, lost)
        return "lost"


def context_for(
    round_: TrainingRound, *, factory: sessionmaker[Session], lease: LeaseKeeper
) -> RoundContext:
    """The context of a claimed round; a round without a campaign cannot run."""
    if round_.campaign_id is None:
        raise StepFailed("a round needs a campaign: its data and its prompts come from one")
    return RoundContext(
        round_id=round_.id,
        campaign_id=round_.campaign_id,
        method=round_.method,
        config=round_config(round_.config),
        dir=Path(get_settings().model_dir).resolve() / "rounds" / str(round_.id),
        factory=factory,
        lease=lease,
    )

"""Schedules: rows that queue rounds by cron (croniter) or after every N new judgments.

Every worker evaluates them; each locks the schedule rows it looks at (FOR UPDATE SKIP LOCKED on
PostgreSQL, the database write lock on SQLite) and records what fired in the same transaction as
the round it queues, and (schedule_id, trigger) is unique: a due round is queued exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from croniter import croniter
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.models import Comparison, Judgment, Schedule, TrainingRound, utcnow
from app.models.rounds import RoundMethod
from app.services.audit import record_event
from app.services.campaigns import get_campaign
from app.services.rounds import check_method, queue_round, round_config

# A worker that was down for a long time fires a cron schedule once, not once per missed time.
MAX_MISSED = 10_000


def _latest_judgment_id(session: Session, campaign_id: int) -> int:
    stmt = (
        select(func.max(Judgment.id))
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .where(Comparison.campaign_id == campaign_id)
    )
    return session.scalar(stmt) or 0


def create_schedule(
    session: Session,
    *,
    campaign_id: int,
    cron: str | None = None,
    every_n_judgments: int | None = None,
    method: str = RoundMethod.RLOO,
    config: dict[str, Any] | None = None,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> Schedule:
    """A schedule that counts from now: cron times after now, judgments after the latest one."""
    cron = (cron or "").strip() or None
    if (cron is None) == (every_n_judgments is None):
        raise ValidationFailed("give either a cron expression or every N judgments", field="cron")
    if cron is not None and not croniter.is_valid(cron):
        raise ValidationFailed(f"not a cron expression: {cron!r}", field="cron")
    if every_n_judgments is not None and every_n_judgments < 1:
        raise ValidationFailed("N must be at least 1", field="every_n_judgments")
    get_campaign(session, campaign_id=campaign_id)
    check_method(method)  # refuse a bad method or config now, not when it fires
    round_config(dict(config or {}))
    schedule = Schedule(
        campaign_id=campaign_id,
        cron=cron,
        every_n_judgments=every_n_judgments,
        method=method,
        config=dict(config or {}),
        last_fired_at=now or utcnow(),
        last_judgment_id=_latest_judgment_id(session, campaign_id),
        created_by_id=actor_id,
    )
    session.add(schedule)
    session.flush()
    record_event(
        session, action="schedule.create", actor_id=actor_id, target_type="schedule",
        target_id=schedule.id, details={"cron": cron, "every_n_judgments": every_n_judgments},
    )  # fmt: skip
    return schedule


def set_schedule_active(
    session: Session, *, schedule_id: int, active: bool, actor_id: int | None
) -> Schedule:
    """Pause or resume a schedule."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"no schedule with id {schedule_id}", field="schedule_id")
    schedule.active = active
    session.flush()
    record_event(
        session, action="schedule.resume" if active else "schedule.pause", actor_id=actor_id,
        target_type="schedule", target_id=schedule_id, details={},
    )  # fmt: skip
    return schedule


def list_schedules(session: Session) -> list[Schedule]:
    """Every schedule, oldest first."""
    return list(session.scalars(select(Schedule).order_by(Schedule.id)))


def _cron_due(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest cron time in (last fired, now], or None when none has come."""
    assert schedule.cron is not None and schedule.last_fired_at is not None
    times = croniter(schedule.cron, schedule.last_fired_at)
    due = None
    for _ in range(MAX_MISSED):
        candidate: datetime = times.get_next(datetime)
        if candidate > now:
            break
        due = candidate
    return due


def _trigger(session: Session, schedule: Schedule, now: datetime) -> str | None:
    """What fires now ("cron:<time>" or "judgments:<id>"), recorded on the schedule; or None."""
    if schedule.cron is not None:
        due = _cron_due(schedule, now)
        if due is None:
            return None
        schedule.last_fired_at = due
        return f"cron:{due.isoformat()}"
    assert schedule.every_n_judgments is not None
    after = schedule.last_judgment_id or 0
    stmt = (
        select(func.count(Judgment.id), func.max(Judgment.id))
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .where(Comparison.campaign_id == schedule.campaign_id, Judgment.id > after)
    )
    count, latest = session.execute(stmt).one()
    if count < schedule.every_n_judgments:
        return None
    schedule.last_judgment_id, schedule.last_fired_at = latest, now
    return f"judgments:{latest}"


def _in_flight(session: Session, schedule: Schedule) -> bool:
    # A schedule does not pile rounds up behind one still queued or running.
    stmt = select(TrainingRound.id).where(
        TrainingRound.schedule_id == schedule.id,
        TrainingRound.status.in_(("queued", "running")),
    )
    return session.scalar(stmt.limit(1)) is not None


def fire_due_schedules(session: Session, *, now: datetime | None = None) -> list[TrainingRound]:
    """Queue the round of every active schedule that is due; each due round exactly once."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "sqlite":
        # No row locks on SQLite: a no-op write takes the database write lock for the transaction.
        session.execute(update(Schedule).where(Schedule.active).values(active=Schedule.active))
    stmt = (
        select(Schedule)
        .where(Schedule.active)
        .order_by(Schedule.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    queued = []
    for schedule in session.scalars(stmt).all():
        if _in_flight(session, schedule):
            continue
        trigger = _trigger(session, schedule, now)
        if trigger is None:
            continue
        queued.append(
            queue_round(
                session,
                campaign_id=schedule.campaign_id,
                method=schedule.method,
                config=schedule.config,
                trigger=trigger,
                schedule_id=schedule.id,
            )  # fmt: skip
        )
    session.flush()
    return queued

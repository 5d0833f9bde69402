"""Skips are data: the rater's own skips for their history, and undoing one while its lease holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from app.errors import Conflict
from app.models import Assignment, Campaign, Comparison, User, utcnow
from app.services.assignment import active_count, get_own_assignment


def own_skips(session: Session, *, rater: User, limit: int = 100) -> list[Assignment]:
    """The rater's skipped comparisons, newest first, with their prompts loaded."""
    stmt = (
        select(Assignment)
        .where(Assignment.rater_id == rater.id, Assignment.state == "skipped")
        .options(joinedload(Assignment.comparison).joinedload(Comparison.prompt))
        .order_by(Assignment.completed_at.desc(), Assignment.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def can_undo(assignment: Assignment, *, now: datetime) -> bool:
    """True while a skipped comparison's lease still holds (the rater may take it back)."""
    return assignment.state == "skipped" and assignment.lease_expires_at > now


def _lock_comparison(session: Session, comparison_id: int) -> None:
    # The same lock claimers take (a row lock on PostgreSQL, the write lock on SQLite), so a
    # claim and an undo cannot both take the comparison's last place.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id)
            .values(priority=Comparison.priority)
        )
    else:
        session.execute(
            select(Comparison.id)
            .where(Comparison.id == comparison_id)
            .with_for_update(key_share=True)
        )


def undo_skip(
    session: Session, *, rater: User, assignment_id: int, now: datetime | None = None
) -> Assignment:
    """Take a skipped comparison back: it is leased to the rater again, reason and note cleared."""
    now = now or utcnow()
    assignment = get_own_assignment(session, rater=rater, assignment_id=assignment_id, lock=True)
    if assignment.state != "skipped":
        raise Conflict("This comparison was not skipped", field="assignment_id")
    if not can_undo(assignment, now=now):
        raise Conflict(
            "The lease on this comparison has ended, so the skip can no longer be undone",
            field="assignment_id",
        )
    _lock_comparison(session, assignment.comparison_id)
    campaign = session.scalar(
        select(Campaign).join(Comparison).where(Comparison.id == assignment.comparison_id)
    )
    taken = active_count(session, comparison_id=assignment.comparison_id, now=now)
    if campaign is None or taken >= campaign.overlap:
        raise Conflict(
            "Other raters have taken every place on this comparison since you skipped it",
            field="assignment_id",
        )
    assignment.state = "leased"
    assignment.skip_reason = None
    assignment.skip_note = None
    assignment.completed_at = None
    session.flush()
    return assignment

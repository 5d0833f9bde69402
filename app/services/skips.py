"""Skips are data: the rater's own skips for their history, and undoing one while its lease holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from app.errors import Conflict
from app.models import Assignment, Comparison, User, utcnow
from app.models.rating import AssignmentState
from app.services.assignment import get_own_assignment


def own_skips(session: Session, *, rater: User, limit: int = 100) -> list[Assignment]:
    """The rater's skipped comparisons, newest first, with their prompts loaded."""
    stmt = (
        select(Assignment)
        .where(Assignment.rater_id == rater.id, Assignment.state == AssignmentState.SKIPPED)
        .options(joinedload(Assignment.comparison).joinedload(Comparison.prompt))
        .order_by(Assignment.completed_at.desc(), Assignment.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def can_undo(assignment: Assignment, *, now: datetime) -> bool:
    """True while a skipped comparison's lease still holds (the rater may take it back)."""
    return assignment.state == AssignmentState.SKIPPED and assignment.lease_expires_at > now


def _locked_open_places(session: Session, comparison_id: int) -> int:
    """The comparison's kept count of open places, read under the lock claimers take (a row lock
    on PostgreSQL, the write lock on SQLite), so a claim and an undo cannot both take the last."""
    stmt = select(Comparison.open_places).where(Comparison.id == comparison_id)
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id)
            .values(priority=Comparison.priority)
        )
    else:
        stmt = stmt.with_for_update(key_share=True)
    return session.scalar(stmt) or 0


def undo_skip(
    session: Session, *, rater: User, assignment_id: int, now: datetime | None = None
) -> Assignment:
    """Take a skipped comparison back: it is leased to the rater again, reason and note cleared."""
    now = now or utcnow()
    assignment = get_own_assignment(session, rater=rater, assignment_id=assignment_id, lock=True)
    if assignment.state != AssignmentState.SKIPPED:
        raise Conflict("This comparison was not skipped", field="assignment_id")
    if not can_undo(assignment, now=now):
        raise Conflict(
            "The lease on this comparison has ended, so the skip can no longer be undone",
            field="assignment_id",
        )
    # A skip gave its place back; taking it again needs an open place (the triggers that keep
    # `open_places` count this lease once its state is "leased" again).
    if _locked_open_places(session, assignment.comparison_id) <= 0:
        raise Conflict(
            "Other raters have taken every place on this comparison since you skipped it",
            field="assignment_id",
        )
    assignment.state = AssignmentState.LEASED
    assignment.skip_reason = None
    assignment.skip_note = None
    assignment.completed_at = None
    session.flush()
    return assignment

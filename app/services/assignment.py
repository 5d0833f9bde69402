"""Who rates what next: leases on comparisons, claimed race-free, `overlap` distinct raters each.

A comparison is open while its active assignments (submitted, or leased and unexpired) number
fewer than its campaign's overlap. Claiming locks the comparison row (FOR UPDATE SKIP LOCKED on
PostgreSQL, the database write lock on SQLite) and counts again under the lock, so two raters can
never both take the last place.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Assignment, Campaign, Comparison, Judgment, User, utcnow

SKIP_REASONS = {
    "specialty": "Outside my specialty",
    "unclear": "Prompt unclear or incomplete",
    "conflict": "Conflict of interest",
    "other": "Other",
}
_system_rng = random.SystemRandom()
# When every open comparison is being claimed by someone else at this instant, wait briefly for
# those claims to commit rather than tell the rater "nothing left" while places remain.
CLAIM_RETRIES = 20


def _counts(now: datetime) -> ColumnElement[bool]:
    """Assignments that hold a place: submitted ones, and leases not yet expired."""
    return or_(
        Assignment.state == "submitted",
        and_(Assignment.state == "leased", Assignment.lease_expires_at > now),
    )


def active_count(session: Session, *, comparison_id: int, now: datetime) -> int:
    """How many places of a comparison are taken now."""
    stmt = select(func.count(Assignment.id)).where(
        Assignment.comparison_id == comparison_id, _counts(now)
    )
    return session.scalar(stmt) or 0


def _current_lease(session: Session, rater: User, now: datetime) -> Assignment | None:
    """The rater's oldest unexpired lease in an active campaign (a reload shows it again)."""
    stmt = (
        select(Assignment)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .where(
            Assignment.rater_id == rater.id,
            Assignment.state == "leased",
            Assignment.lease_expires_at > now,
            Campaign.status == "active",
        )
        .order_by(Assignment.created_at, Assignment.id)
        .limit(1)
    )
    return session.scalar(stmt)


def _candidate(
    session: Session, rater: User, now: datetime, draw: float, tried: list[int], *, lock: bool
) -> Comparison | None:
    """The best open comparison for this rater (locked, skipping rows others are claiming)."""
    taken = (
        select(func.count(Assignment.id))
        .where(Assignment.comparison_id == Comparison.id, _counts(now))
        .correlate(Comparison)
        .scalar_subquery()
    )
    # The rater's own expired lease does not exclude the comparison: it is renewed instead.
    done_by_rater = exists().where(
        Assignment.comparison_id == Comparison.id,
        Assignment.rater_id == rater.id,
        Assignment.state != "leased",
    )
    # One draw per claim: gold is preferred when the draw falls under the campaign's gold rate,
    # so gold comes at that rate while both kinds remain, and either kind fills in for the other.
    wants_gold = Comparison.is_gold == (Campaign.gold_rate > literal(draw))
    stmt = (
        select(Comparison)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .where(Campaign.status == "active", ~done_by_rater, taken < Campaign.overlap)
        .order_by(
            Campaign.priority.desc(),
            wants_gold.desc(),
            Comparison.priority.desc(),
            taken.desc(),  # closest to completion first, so finished comparisons accumulate
            Comparison.id,
        )
        .limit(1)
    )
    if lock:
        # NO KEY UPDATE: claimers exclude each other, but rows merely referenced by a foreign
        # key (a judgment or assignment being inserted elsewhere) are not skipped.
        stmt = stmt.with_for_update(skip_locked=True, key_share=True, of=Comparison)
    if tried:
        stmt = stmt.where(Comparison.id.not_in(tried))
    return session.scalar(stmt.execution_options(populate_existing=True))


def _lock_for_sqlite(session: Session, comparison_id: int) -> None:
    # SQLite has no row locks: a no-op write takes the database write lock, which serialises
    # claimers; the recount that follows then reads the latest committed state.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id)
            .values(priority=Comparison.priority)
        )


def _place(
    session: Session,
    rater: User,
    comparison: Comparison,
    now: datetime,
    lease: timedelta,
    rng: random.Random,
) -> Assignment:
    """Create the rater's assignment, or renew their own expired lease on it."""
    existing = session.scalar(
        select(Assignment).where(
            Assignment.comparison_id == comparison.id, Assignment.rater_id == rater.id
        )
    )
    if existing is not None:
        existing.lease_expires_at = now + lease
        session.flush()
        return existing
    order = [item.response_id for item in comparison.items]
    rng.shuffle(order)
    assignment = Assignment(
        comparison_id=comparison.id,
        rater_id=rater.id,
        state="leased",
        display_order=order,
        lease_expires_at=now + lease,
    )
    session.add(assignment)
    session.flush()
    return assignment


def next_assignment(
    session: Session,
    *,
    rater: User,
    now: datetime | None = None,
    lease_minutes: int | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """The rater's current lease, or a newly claimed comparison; None when nothing is left."""
    now = now or utcnow()
    rng = rng or _system_rng
    lease = timedelta(minutes=lease_minutes or get_settings().lease_minutes)
    current = _current_lease(session, rater, now)
    if current is not None:
        return current
    draw = rng.random()
    tried: list[int] = []
    for attempt in range(CLAIM_RETRIES):
        while (comparison := _candidate(session, rater, now, draw, tried, lock=True)) is not None:
            tried.append(comparison.id)
            _lock_for_sqlite(session, comparison.id)
            campaign = session.get_one(Campaign, comparison.campaign_id)
            # Counted again under the lock: the candidate query's count may predate a commit.
            if active_count(session, comparison_id=comparison.id, now=now) < campaign.overlap:
                held = (
                    timedelta(minutes=campaign.lease_minutes) if campaign.lease_minutes else lease
                )
                return _place(session, rater, comparison, now, held, rng)
        if _candidate(session, rater, now, draw, tried, lock=False) is None:
            return None
        time.sleep(0.02 * (attempt + 1))
    return None


def get_own_assignment(
    session: Session, *, rater: User, assignment_id: int, lock: bool = False
) -> Assignment:
    """The rater's own assignment by id; anyone else's is reported as not found."""
    stmt = select(Assignment).where(Assignment.id == assignment_id, Assignment.rater_id == rater.id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    assignment = session.scalar(stmt)
    if assignment is None:
        raise NotFound("this comparison is not assigned to you", field="assignment_id")
    return assignment


def skip_assignment(
    session: Session,
    *,
    rater: User,
    assignment_id: int,
    reason: str,
    note: str = "",
    now: datetime | None = None,
) -> Assignment:
    """Give a leased comparison back with a reason; the rater will not be offered it again."""
    if reason not in SKIP_REASONS:
        raise ValidationFailed("choose a reason for skipping", field="skip_reason")
    text = SKIP_REASONS[reason] + (f": {note.strip()}" if note.strip() else "")
    assignment = get_own_assignment(session, rater=rater, assignment_id=assignment_id, lock=True)
    if assignment.state != "leased":
        raise Conflict(f"this comparison was already {assignment.state}", field="assignment_id")
    assignment.state = "skipped"
    assignment.skip_reason = text[:200]
    assignment.completed_at = now or utcnow()
    session.flush()
    return assignment


@dataclass(frozen=True)
class Progress:
    """The rater's progress line: judged today (UTC), judged in the campaign, still to do."""

    done_today: int
    done_in_campaign: int
    left: int


def progress(
    session: Session, *, rater: User, campaign_id: int, now: datetime | None = None
) -> Progress:
    """Counts for the progress line; corrections are not counted twice."""
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = select(func.count(Judgment.id)).where(
        Judgment.rater_id == rater.id, Judgment.revision == 0
    )
    done_today = session.scalar(first.where(Judgment.created_at >= midnight)) or 0
    done_in_campaign = (
        session.scalar(
            first.join(Comparison, Comparison.id == Judgment.comparison_id).where(
                Comparison.campaign_id == campaign_id
            )
        )
        or 0
    )
    taken = (
        select(func.count(Assignment.id))
        .where(Assignment.comparison_id == Comparison.id, _counts(now))
        .correlate(Comparison)
        .scalar_subquery()
    )
    mine = select(Assignment.id).where(
        Assignment.comparison_id == Comparison.id, Assignment.rater_id == rater.id
    )
    held = exists(mine.where(Assignment.state == "leased", Assignment.lease_expires_at > now))
    done = exists(mine.where(Assignment.state != "leased"))
    left = (
        session.scalar(
            select(func.count(Comparison.id))
            .join(Campaign, Campaign.id == Comparison.campaign_id)
            .where(
                Comparison.campaign_id == campaign_id, ~done, or_(held, taken < Campaign.overlap)
            )
        )
        or 0
    )
    return Progress(done_today=done_today, done_in_campaign=done_in_campaign, left=left)

"""Who rates what next: leases on comparisons, claimed race-free, `overlap` distinct raters each.

Every comparison keeps its count of open places (`Comparison.open_places`: the campaign's overlap
less the assignments holding a place), kept by database triggers in the writing transaction. A
claim reads the front of the partial index on comparisons with open places (priority, then
closest to completion), takes the first there that the rater has not done, else the freshest
open comparison they have not done, and locks it (FOR NO KEY UPDATE SKIP LOCKED on PostgreSQL,
so concurrent claimers take different rows; the database write lock on SQLite). The lock
re-checks `open_places > 0` on the row's latest version, so two raters can never both take the
last place. The cost is O(log N) in the campaign's size and does not grow with the rater's
history, until the campaign's last comparisons (no fresh one left) are the rater's own."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import QueryableAttribute, Session, aliased

from app.config import get_settings
from app.db import loaded, pause, run_core
from app.errors import Conflict, NotFound, ValidationFailed
from app.models import (
    Assignment,
    Campaign,
    CampaignTally,
    Comparison,
    ComparisonItem,
    RaterTally,
    User,
    utcnow,
)
from app.models.campaigns import wants_raters
from app.models.rating import MAX_SKIP_NOTE, SKIP_REASONS, AssignmentState

_system_rng = random.SystemRandom()
# When every open comparison is being claimed by someone else at this instant, wait briefly for
# those claims to commit rather than tell the rater "nothing left" while places remain.
CLAIM_RETRIES = 20
# Expired leases give their places back at least this often (and whenever a claim finds nothing).
RELEASE_EVERY_S = 10.0
_released_at = [float("-inf")]
# (campaign id, gold rate, the rater's oldest live lease in it or None)
# (campaign id, gold rate, the rater's live lease in it, the campaign's lease minutes or None)
_CampaignRow = tuple[int, float, int | None, int | None]


def release_expired_leases(session: Session, *, now: datetime) -> int:
    """Turn leases past their expiry into "expired", which gives their places back."""
    # The comparison is locked before the assignment (its trigger then updates the comparison),
    # the order claims take them in, and skipped when a claim holds it: no deadlock, no wait.
    expired = (
        select(Assignment.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Assignment.is_lapsed_lease(now))
        .with_for_update(of=Comparison, skip_locked=True, key_share=True)
    )
    result = session.execute(
        update(Assignment)
        .where(Assignment.id.in_(expired.scalar_subquery()))
        .values(state=AssignmentState.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    _released_at[0] = time.monotonic()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# The hot path's statements are built once, with bound parameters: building one of these and
# computing its cache key costs more Python time than running it (~1 ms for the claim alone);
# a statement object keeps its cache key, so SQLAlchemy goes straight to the compiled SQL.
_ACTIVE_CAMPAIGNS = (
    select(
        Campaign.id,
        Campaign.gold_rate,
        select(func.min(Assignment.id))
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Comparison.campaign_id == Campaign.id,
            Assignment.rater_id == bindparam("rater_id"),
            Assignment.is_live_lease(bindparam("now")),
        )
        .correlate(Campaign)
        .scalar_subquery(),
        Campaign.lease_minutes,
    )
    .where(Campaign.status == "active")
    .order_by(Campaign.priority.desc(), Campaign.id)
)


def _active_campaigns(session: Session, rater: User, now: datetime) -> list[_CampaignRow]:
    """Active campaigns in claim order, each with the rater's oldest live lease in it (if any)."""
    rows = run_core(session, _ACTIVE_CAMPAIGNS, {"rater_id": rater.id, "now": now})
    return [(row[0], row[1], row[2], row[3]) for row in rows]


# The claim's limits as SQL literals, as its partial-index predicate is (wants_raters): with
# bound parameters PostgreSQL planned the prepared claim afresh on every call, 1.0 ms of its
# 1.3 ms (pg_stat_statements, 2,484 calls, 2,494 plans), the largest part of the database's time
# on a judgment.
_ONE: ColumnElement[int] = literal_column("1")


# The claim order: comparison priority, then closest to completion (fewest open places).
_PREFERRED = (Comparison.priority.desc(), Comparison.open_places, Comparison.id)
# How many comparisons at the front of the claim order a claim looks at before it falls back to
# the freshest: more than the claims usually in flight at once, whose rows it skips as locked.
CLAIM_WINDOW = 16


def _claim_statement() -> Select[int, int, int, int | None]:
    """The claim: lock the first open comparison of one kind that the rater has not done.

    The first of the claim order's CLAIM_WINDOW open comparisons that the rater has not done
    and nobody is claiming, else the freshest such comparison anywhere: both read a few index
    entries, whatever the campaign's size and the rater's history (the fallback is evaluated
    only when the window had none). One statement returns (comparison id, prompt id, a
    response id, the rater's own expired assignment on it or None) per item, in position order.
    """

    def not_done_by_rater(comparison: type[Comparison]) -> ColumnElement[bool]:
        # The rater's own expired lease (released or not yet) does not exclude the comparison:
        # it is renewed instead. A live one cannot be here: next_assignment returned it.
        return ~select(Assignment.id).where(
            Assignment.comparison_id == comparison.id,
            Assignment.rater_id == bindparam("rater_id"),
            Assignment.is_done(),
        ).exists()

    def of_kind(comparison: type[Comparison]) -> tuple[ColumnElement[bool], ...]:
        return (
            comparison.campaign_id == bindparam("campaign_id"),
            comparison.is_gold == bindparam("gold"),
            wants_raters(comparison),
        )

    # NO KEY UPDATE: claimers exclude each other, but rows merely referenced by a foreign key
    # (a judgment or assignment being inserted elsewhere) are not skipped. The lock re-checks
    # `open_places > 0` on the row's latest version.
    lock = {"skip_locked": True, "key_share": True}
    front = (
        select(Comparison.id, Comparison.priority, Comparison.open_places)
        .where(*of_kind(Comparison))
        .order_by(*_PREFERRED)
        .limit(literal_column(str(CLAIM_WINDOW)))
        .subquery("front")
    )
    near = aliased(Comparison, name="near")
    # Joined in the window's order, so the first row that qualifies ends the scan.
    in_front = (
        select(near.id)
        .join(front, front.c.id == near.id)
        .where(wants_raters(near), not_done_by_rater(near))
        .order_by(front.c.priority.desc(), front.c.open_places, front.c.id)
        .limit(_ONE)
        .with_for_update(of=near, **lock)
        .scalar_subquery()
    )
    # The fallback takes the freshest (most open places). A rater's own done comparisons wait at
    # the front of the claim order until others fill them, and when the rater works faster than
    # the others (alone, on a quiet night) skipping them one by one grew with the rater's
    # history: 43 ms of PostgreSQL CPU a judgment after 2,000 of them. They have fewer open
    # places than a fresh comparison, so in this order they come last (ix_comparisons_fresh).
    fresh = aliased(Comparison, name="fresh")
    freshest = (
        select(fresh.id)
        .where(*of_kind(fresh), not_done_by_rater(fresh))
        .order_by(fresh.priority.desc(), fresh.open_places.desc(), fresh.id)
        .limit(_ONE)
        .with_for_update(of=fresh, **lock)
        .scalar_subquery()
    )
    own_expired = (
        select(Assignment.id)
        .where(
            Assignment.comparison_id == Comparison.id,
            Assignment.rater_id == bindparam("rater_id"),
            ~Assignment.is_done(),
        )
        .correlate(Comparison)
        .scalar_subquery()
    )
    return (
        select(Comparison.id, Comparison.prompt_id, ComparisonItem.response_id, own_expired)
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .where(Comparison.id == func.coalesce(in_front, freshest))
        .order_by(ComparisonItem.position)
    )


_CLAIM = _claim_statement()


def _claim(
    session: Session, rater: User, campaign_id: int, gold: bool
) -> tuple[int, int, list[int], int | None] | None:
    """Lock the first open comparison of this kind that the rater has not done (see above)."""
    params = {"rater_id": rater.id, "campaign_id": campaign_id, "gold": gold}
    rows = run_core(session, _CLAIM, params).all()
    if not rows:
        return None
    return rows[0][0], rows[0][1], [row[2] for row in rows], rows[0][3]


def _lock_for_sqlite(session: Session, campaign_id: int) -> None:
    # SQLite has no row locks: a no-op write takes the database write lock, which serialises
    # claimers; the claim that follows then reads the latest committed state.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(priority=Campaign.priority)
        )


def _place(
    session: Session,
    rater: User,
    claimed: tuple[int, int, list[int], int | None],
    now: datetime,
    lease: timedelta,
    rng: random.Random,
) -> Assignment:
    """Create the rater's assignment, or renew their own expired lease on it."""
    comparison_id, _prompt_id, response_ids, own_expired = claimed
    if own_expired is not None:
        existing = session.get_one(Assignment, own_expired)
        existing.state = AssignmentState.LEASED
        existing.lease_expires_at = now + lease
        session.flush()
        return existing
    order = list(response_ids)
    rng.shuffle(order)
    values = {
        "comparison_id": comparison_id,
        "rater_id": rater.id,
        "state": AssignmentState.LEASED,
        "display_order": order,
        "lease_expires_at": now + lease,
    }
    placed = loaded(session, _INSERT_ASSIGNMENT, values, Assignment)
    assert placed is not None  # a plain INSERT: a conflict is an error, not None
    return placed


_ASSIGNMENTS = cast(Table, Assignment.__table__)
_INSERT_ASSIGNMENT = insert(_ASSIGNMENTS).returning(*_ASSIGNMENTS.c)


def _claim_in_order(
    session: Session,
    rater: User,
    campaigns: list[_CampaignRow],
    draw: float,
) -> tuple[tuple[int, int, list[int], int | None], int | None] | None:
    for campaign_id, gold_rate, _lease, minutes in campaigns:
        # One draw per claim: gold is preferred when the draw falls under the campaign's gold
        # rate, so gold comes at that rate while both kinds remain; either fills in for the other.
        wants_gold = gold_rate > draw
        _lock_for_sqlite(session, campaign_id)
        for gold in (wants_gold, not wants_gold):
            claimed = _claim(session, rater, campaign_id, gold)
            if claimed is not None:
                return claimed, minutes
    return None


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
    if time.monotonic() - _released_at[0] > RELEASE_EVERY_S:
        release_expired_leases(session, now=now)
    campaigns = _active_campaigns(session, rater, now)
    current = [row[2] for row in campaigns if row[2] is not None]
    if current:
        return session.get_one(Assignment, min(current))
    draw = rng.random()
    for attempt in range(CLAIM_RETRIES):
        claimed = _claim_in_order(session, rater, campaigns, draw)
        if claimed is not None:
            held = timedelta(minutes=claimed[1]) if claimed[1] else lease  # the campaign's own
            return _place(session, rater, claimed[0], now, held, rng)
        # Nothing open: maybe leases have expired since the last release, or places are held
        # by claims in flight (rows locked by others); look again after those commit.
        if attempt == 0 and release_expired_leases(session, now=now):
            continue
        if not _anything_open(session, rater, campaigns):
            return None
        pause(0.02 * (attempt + 1))
    return None


def _anything_open(session: Session, rater: User, campaigns: list[_CampaignRow]) -> bool:
    """Whether an open comparison the rater has not done exists, locked by others or not."""
    done = (
        select(Assignment.id)
        .where(
            Assignment.comparison_id == Comparison.id,
            Assignment.rater_id == rater.id,
            Assignment.is_done(),
        )
        .exists()
    )
    ids = [row[0] for row in campaigns]
    stmt = select(Comparison.id).where(
        Comparison.campaign_id.in_(ids), wants_raters(Comparison), ~done
    )
    return session.scalar(stmt.limit(1)) is not None


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
    assignment = get_own_assignment(session, rater=rater, assignment_id=assignment_id, lock=True)
    if assignment.state != AssignmentState.LEASED:
        raise Conflict(f"this comparison was already {assignment.state}", field="assignment_id")
    assignment.state = AssignmentState.SKIPPED
    assignment.skip_reason = reason
    assignment.skip_note = note.strip()[:MAX_SKIP_NOTE] or None
    assignment.completed_at = now or utcnow()
    session.flush()
    return assignment


@dataclass(frozen=True)
class Progress:
    """The rater's progress line: judged today (UTC), judged in the campaign, still to do.

    `left` is the campaign's open places (a kept count), plus the comparison the rater holds.
    """

    done_today: int
    done_in_campaign: int
    left: int


def progress_columns(
    *,
    rater_id: int | BindParameter[int],
    campaign_id: int | ColumnElement[int] | QueryableAttribute[int],
    today: date | BindParameter[date],
) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
    """Scalar subqueries for (done today, done in the campaign, the campaign's open places).

    All three sum kept tallies (the rater's first judgments per campaign and UTC day, and the
    campaign's shards): bounded by the days and campaigns, never by the number of judgments.
    """
    mine = select(func.coalesce(func.sum(RaterTally.judged), 0)).where(
        RaterTally.rater_id == rater_id
    )
    done_today = mine.where(RaterTally.day == today).scalar_subquery()
    in_campaign = mine.where(RaterTally.campaign_id == campaign_id).scalar_subquery()
    open_places = (
        select(func.coalesce(func.sum(CampaignTally.open_places), 0))
        .where(CampaignTally.campaign_id == campaign_id)
        .scalar_subquery()
    )
    return done_today, in_campaign, open_places


def utc_day(now: datetime) -> date:
    """`now`'s UTC date: "today" in the progress line."""
    return now.astimezone(UTC).date()


def progress(
    session: Session, *, rater: User, campaign_id: int, now: datetime | None = None
) -> Progress:
    """Counts for the progress line; corrections are not counted twice."""
    now = now or utcnow()
    holding = (
        select(Assignment.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(
            Assignment.rater_id == rater.id,
            Comparison.campaign_id == campaign_id,
            Assignment.is_live_lease(now),
        )
        .exists()
    )
    columns = progress_columns(rater_id=rater.id, campaign_id=campaign_id, today=utc_day(now))
    today, in_campaign, open_places, held = session.execute(select(*columns, holding)).one()
    return Progress(today, in_campaign, max(open_places, 0) + int(bool(held)))

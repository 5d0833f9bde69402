"""Who rates what next: leases on comparisons, claimed race-free, `overlap` distinct raters each.

Every comparison keeps its count of open places (`Comparison.open_places`: the campaign's overlap
less the assignments holding a place), kept by database triggers in the writing transaction. A
claim reads the front of the partial index on comparisons with open places (priority, then
closest to completion), takes the first there that the rater has not done, else the freshest
open comparison they have not done, and locks it (FOR NO KEY UPDATE SKIP LOCKED on PostgreSQL,
so concurrent claimers take different rows; the database write lock on SQLite). The lock
re-checks `open_places > 0` on the row's latest version, so two raters can never both take the
last place; the same statement inserts the rater's lease. The cost is O(log N) in the campaign's
size and does not grow with the rater's history, until the campaign's last comparisons (no fresh
one left) are the rater's own."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import QueryableAttribute, Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

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
from app.models.base import UTCDateTime
from app.models.campaigns import wants_raters
from app.models.rating import MAX_SKIP_NOTE, SKIP_REASONS, AssignmentState

_system_rng = random.SystemRandom()
# When every open comparison is being claimed by someone else at this instant, wait briefly for
# those claims to commit rather than tell the rater "nothing left" while places remain.
CLAIM_RETRIES = 20
# Expired leases give their places back at least this often (and whenever a claim finds nothing).
RELEASE_EVERY_S = 10.0
_released_at = [float("-inf")]
# (campaign id, gold rate, the rater's oldest live lease in it or None, the campaign's lease
# minutes or None)
_CampaignRow = tuple[int, float, int | None, int | None]


@dataclass(frozen=True)
class Continuing:
    """The campaign of the comparison a rater just judged, as that transaction read it: where
    their next comparison comes from unless something changed (see next_assignment)."""

    campaign_id: int
    gold_rate: float
    lease_minutes: int | None


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


def release_if_due(session: Session, *, now: datetime) -> None:
    """Release expired leases when RELEASE_EVERY_S have passed since they last were."""
    if time.monotonic() - _released_at[0] > RELEASE_EVERY_S:
        release_expired_leases(session, now=now)


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
    .order_by(Campaign.priority.desc(), Campaign.id)  # the campaigns' claim order (_first_in_claim_order)
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


def _claim_statement(*, continuing: bool = False) -> dict[str, Any]:
    """The claim, per dialect: lock the first open comparison of one kind that the rater has not
    done, and place the rater's lease on it, in one statement.

    Claiming and placing in one INSERT ... SELECT saves the placing INSERT's round trip on every
    judgment (see _claimed for which comparison).

    `continuing`: only while the campaign is the first active one in the claim order and the
    rater holds no live lease, which is what next_assignment's campaigns read checks first.
    """
    claimed = _claimed()
    if continuing:
        claimed = and_(claimed, _still_continuing())
    return {
        dialect: _placing(insert, claimed, _shuffled_items(dialect))
        for dialect, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
    }


def claim_after_judgment(judged: CTE) -> Any:
    """PostgreSQL: the continuing claim (see _claim_statement) as part of the judgment's own
    statement, after `judged` (a CTE of the judgment's INSERT): placed only when that inserted
    a row. Binds: the claim's, and `comparison_id` and `assignment_id`, the judged one's.

    A statement does not see its own writes (nor its triggers', which run at its end): here the
    judged lease is still leased and live, so the judged comparison is excluded by id, and the
    judged lease from the check that the rater holds none.
    """
    claimed = and_(
        _claimed(excluding=bindparam("comparison_id", type_=Integer())),
        _still_continuing(excluding=bindparam("assignment_id", type_=Integer())),
        select(judged.c.id).exists(),
    )
    return _placing(postgresql_insert, claimed, _shuffled_items("postgresql"))


def _claimed(*, excluding: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """SQL: the comparison is the one to claim: the first of the claim order's CLAIM_WINDOW open
    comparisons that the rater has not done and nobody is claiming, else the freshest such
    comparison anywhere. Both read a few index entries, whatever the campaign's size and the
    rater's history (the fallback is evaluated only when the window had none). `excluding`: a
    comparison not to claim."""

    def not_done_by_rater(comparison: type[Comparison]) -> ColumnElement[bool]:
        # The rater's own expired lease (released or not yet) does not exclude the comparison:
        # it is renewed instead. A live one cannot be here: next_assignment returned it.
        not_done = ~select(Assignment.id).where(
            Assignment.comparison_id == comparison.id,
            Assignment.rater_id == bindparam("rater_id"),
            Assignment.is_done(),
        ).exists()
        return not_done if excluding is None else and_(not_done, comparison.id != excluding)

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
    return Comparison.id == func.coalesce(in_front, freshest)


def _still_continuing(*, excluding: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """SQL: what next_assignment's campaigns read checks first still holds: the campaign is the
    first active one in the claim order, and the rater holds no live lease (but `excluding`)."""
    return and_(_first_in_claim_order(), _no_live_lease(excluding=excluding))


def _first_in_claim_order() -> ColumnElement[bool]:
    """SQL: the campaign `campaign_id` is active and no active campaign comes before it in the
    campaigns' claim order (priority, then id: _ACTIVE_CAMPAIGNS')."""
    this, ahead = aliased(Campaign, name="this"), aliased(Campaign, name="ahead")
    before = or_(
        ahead.priority > this.priority, and_(ahead.priority == this.priority, ahead.id < this.id)
    )
    others_first = select(ahead.id).where(ahead.status == "active", before).exists()
    return (
        select(this.id)
        .where(this.id == bindparam("campaign_id"), this.status == "active", ~others_first)
        .exists()
    )


def _no_live_lease(*, excluding: ColumnElement[int] | None = None) -> ColumnElement[bool]:
    """SQL: the rater holds no live lease in an active campaign (one they would be shown), but
    maybe the lease `excluding`."""
    held = (
        select(Assignment.id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .where(
            Assignment.rater_id == bindparam("rater_id"),
            Assignment.is_live_lease(bindparam("now")),
            Campaign.status == "active",
        )
    )
    if excluding is not None:
        held = held.where(Assignment.id != excluding)
    return ~held.exists()


def _shuffled_items(dialect: str) -> ColumnElement[Any]:
    """The claimed comparison's response ids in a random order: the order the rater sees them in
    (a new one per assignment, so that no position is favoured)."""
    items = (
        select(ComparisonItem.response_id)
        .where(ComparisonItem.comparison_id == Comparison.id)
        .correlate(Comparison)  # also from inside SQLite's derived table below
    )
    if dialect == "postgresql":
        order = aggregate_order_by(ComparisonItem.response_id, func.random())
        return items.with_only_columns(func.jsonb_agg(order)).scalar_subquery()
    shuffled = items.order_by(func.random()).subquery()
    return select(func.json_group_array(shuffled.c.response_id)).scalar_subquery()


def _placing(
    insert: Callable[[Table], Any], claimed: ColumnElement[bool], order: ColumnElement[Any]
) -> Any:
    """The claim as one INSERT ... SELECT: the rater's new lease on the claimed comparison, or
    their own expired one on it renewed (its order kept); RETURNING the assignment."""
    columns = ["comparison_id", "rater_id", "state", "display_order", "lease_expires_at",
               "created_at"]
    lease = select(
        Comparison.id,
        bindparam("rater_id", type_=Integer()),
        literal(AssignmentState.LEASED.value, String),
        order,
        bindparam("lease_expires_at", type_=UTCDateTime()),
        bindparam("created_at", type_=UTCDateTime()),
    ).where(claimed)
    statement = insert(_ASSIGNMENTS).from_select(columns, lease, include_defaults=False)
    renewed = statement.on_conflict_do_update(
        index_elements=[_ASSIGNMENTS.c.comparison_id, _ASSIGNMENTS.c.rater_id],
        set_={"state": statement.excluded.state,
              "lease_expires_at": statement.excluded.lease_expires_at},
        where=~Assignment.is_done(),  # only ever an expired lease: the claim skips done ones
    )
    return renewed.returning(*_ASSIGNMENTS.c)


_ASSIGNMENTS = cast(Table, Assignment.__table__)
_CLAIM = _claim_statement()
_CLAIM_CONTINUING = _claim_statement(continuing=True)


def _claim(
    session: Session, params: dict[str, Any], *, continuing: bool = False
) -> Assignment | None:
    """The rater's lease on the first open comparison of one kind they have not done (see
    _claim_statement; binds from _claim_params), or None."""
    statements = _CLAIM_CONTINUING if continuing else _CLAIM
    placed = loaded(session, statements[session.get_bind().dialect.name], params, Assignment)
    if placed is not None:  # a renewed lease: the session's copy, if it held one, is told
        set_committed_value(placed, "state", AssignmentState.LEASED)
        set_committed_value(placed, "lease_expires_at", params["lease_expires_at"])
    return placed


def _claim_params(
    rater_id: int, campaign_id: int, gold: bool, *, now: datetime, expires: datetime
) -> dict[str, Any]:
    return {
        "rater_id": rater_id, "campaign_id": campaign_id, "gold": gold,
        "lease_expires_at": expires, "created_at": now,
    }


def _continuing_params(
    rater_id: int, continuing: Continuing, *, now: datetime, draw: float, lease: timedelta
) -> dict[str, Any]:
    gold = continuing.gold_rate > draw
    expires = _lease_end(now, continuing.lease_minutes, lease)
    # `now` for its check that the rater holds no live lease.
    return {**_claim_params(rater_id, continuing.campaign_id, gold, now=now, expires=expires),
            "now": now}


def continuing_claim_params(rater_id: int, continuing: Continuing, *, now: datetime) -> dict[str, Any]:
    """The continuing claim's binds (claim_after_judgment's): as next_assignment draws them."""
    lease = timedelta(minutes=get_settings().lease_minutes)
    return _continuing_params(
        rater_id, continuing, now=now, draw=_system_rng.random(), lease=lease
    )


def _lease_end(now: datetime, minutes: int | None, lease: timedelta) -> datetime:
    """When a lease taken now ends: after the campaign's own lease length, else `lease`."""
    return now + (timedelta(minutes=minutes) if minutes else lease)


def _lock_for_sqlite(session: Session, campaign_id: int) -> None:
    # SQLite has no row locks: a no-op write takes the database write lock, which serialises
    # claimers; the claim that follows then reads the latest committed state.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(priority=Campaign.priority)
        )


def _claim_in_order(
    session: Session,
    rater: User,
    campaigns: list[_CampaignRow],
    draw: float,
    now: datetime,
    lease: timedelta,
) -> Assignment | None:
    for campaign_id, gold_rate, _lease, minutes in campaigns:
        # One draw per claim: gold is preferred when the draw falls under the campaign's gold
        # rate, so gold comes at that rate while both kinds remain; either fills in for the other.
        wants_gold = gold_rate > draw
        expires = _lease_end(now, minutes, lease)
        _lock_for_sqlite(session, campaign_id)
        for gold in (wants_gold, not wants_gold):
            params = _claim_params(rater.id, campaign_id, gold, now=now, expires=expires)
            placed = _claim(session, params)
            if placed is not None:
                return placed
    return None


def next_assignment(
    session: Session,
    *,
    rater: User,
    now: datetime | None = None,
    lease_minutes: int | None = None,
    rng: random.Random | None = None,
    continuing: Continuing | None = None,
) -> Assignment | None:
    """The rater's current lease, or a newly claimed comparison; None when nothing is left.

    After a judgment (`continuing`), the claim in that campaign comes first, in one statement
    that also makes the campaigns read's checks (the campaign still first, no lease held): the
    usual case then costs no campaigns read. Whenever it finds nothing, the rules below decide.
    """
    now = now or utcnow()
    rng = rng or _system_rng
    lease = timedelta(minutes=lease_minutes or get_settings().lease_minutes)
    release_if_due(session, now=now)
    draw = rng.random()
    if continuing is not None:
        placed = _claim_continuing(session, rater, continuing, draw, now, lease)
        if placed is not None:
            return placed
    campaigns = _active_campaigns(session, rater, now)
    current = [row[2] for row in campaigns if row[2] is not None]
    if current:
        return session.get_one(Assignment, min(current))
    for attempt in range(CLAIM_RETRIES):
        placed = _claim_in_order(session, rater, campaigns, draw, now, lease)
        if placed is not None:
            return placed
        # Nothing open: maybe leases have expired since the last release, or places are held
        # by claims in flight (rows locked by others); look again after those commit.
        if attempt == 0 and release_expired_leases(session, now=now):
            continue
        if not _anything_open(session, rater, campaigns):
            return None
        pause(0.02 * (attempt + 1))
    return None


def _claim_continuing(
    session: Session,
    rater: User,
    continuing: Continuing,
    draw: float,
    now: datetime,
    lease: timedelta,
) -> Assignment | None:
    """The first claim next_assignment would make, if the campaign is still the first in the
    claim order and the rater holds no lease; else None (see _claim_statement)."""
    _lock_for_sqlite(session, continuing.campaign_id)
    params = _continuing_params(rater.id, continuing, now=now, draw=draw, lease=lease)
    return _claim(session, params, continuing=True)


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

"""Judgments: validate what a rater did, record it once (idempotent), correct it by a new revision."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.db import column_default, loaded, run_core
from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Assignment, Campaign, Comparison, Judgment, User, utcnow
from app.models.rating import MAX_NOT_RANKABLE_REASON, MAX_RATIONALE, AssignmentState
from app.services.assignment import Continuing
from trainer.schema import KNOWN_FLAGS, UNSAFE, is_weak_order

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class JudgmentInput:
    """What the rater submitted, parsed but not yet checked against the comparison."""

    idempotency_key: str
    scale: int | None = None  # 2-way: -3 (A much better) .. 0 (tie) .. 3 (B much better)
    # Keyed by display index (0 = A): forms never carry response ids, which follow import order.
    ranks: dict[int, int] = field(default_factory=dict)  # K-way: index -> rank, 1 best
    not_rankable: bool = False
    not_rankable_reason: str = ""
    flags: dict[int, list[str]] = field(default_factory=dict)  # index -> flags
    rationale: str = ""
    time_spent_ms: int | None = None
    read_to_end: dict[int, bool] = field(default_factory=dict)  # index -> scrolled to its end


@dataclass(frozen=True)
class SubmitResult:
    """The recorded judgment; `replayed` when this key had already been recorded. `continuing`:
    the comparison's campaign, as this transaction read it (for next_assignment)."""

    judgment: Judgment
    replayed: bool
    continuing: Continuing | None = None


def letter(index: int) -> str:
    """The label a rater sees for the response at display index `index` (A, B, ...)."""
    return string.ascii_uppercase[index]


def ranks_from_scale(scale: int) -> tuple[list[int], int]:
    """Ranks over (A, B) and the strength that a 2-way preference scale value means."""
    if not -3 <= scale <= 3:
        raise ValidationFailed("choose a point on the preference scale", field="scale")
    if scale == 0:
        return [0, 0], 0
    return ([0, 1], -scale) if scale < 0 else ([1, 0], scale)


def _dense_ranks(shown: list[int], given: dict[int, int]) -> list[int]:
    """Dense ranks from 0 in display order, from the 1..K ranks the rater set (ties allowed)."""
    if any(not 0 <= index < len(shown) for index in given):
        raise ValidationFailed("a response that was not shown was ranked", field="ranks")
    missing = [letter(i) for i in range(len(shown)) if i not in given]
    if missing:
        raise ValidationFailed(
            f"give every response a rank: {', '.join(missing)} has none", field="ranks"
        )
    if any(not 1 <= r <= len(shown) for r in given.values()):
        raise ValidationFailed(f"ranks go from 1 (best) to {len(shown)}", field="ranks")
    levels = sorted(set(given.values()))
    ranks = [levels.index(given[i]) for i in range(len(shown))]
    assert is_weak_order(ranks)
    return ranks


def _check_flags(offered: list[str], shown: list[int], data: JudgmentInput) -> dict[str, Any]:
    allowed = set(offered) & set(KNOWN_FLAGS)
    out: dict[str, Any] = {}
    unsafe = []
    for index, flags in sorted(data.flags.items()):
        if not 0 <= index < len(shown):
            raise ValidationFailed("a response that was not shown was flagged", field="flags")
        bad = [f for f in flags if f not in allowed]
        if bad:
            raise ValidationFailed(f"unknown flag: {bad[0]}", field="flags")
        if flags:
            out[str(shown[index])] = sorted(set(flags))
        if UNSAFE in flags:
            unsafe.append(letter(index))
    if unsafe and not data.rationale.strip():
        raise ValidationFailed(
            f"say why response {', '.join(unsafe)} is unsafe in the rationale",
            field="rationale",
        )
    return out


def _read_to_end(shown: list[int], given: dict[int, bool]) -> list[bool] | None:
    """Read state in display order; None unless the client reported every response."""
    if any(not 0 <= index < len(shown) for index in given):
        raise ValidationFailed("read state was sent for a response that was not shown",
                               field="read_to_end")
    if len(given) != len(shown):
        return None
    return [given[i] for i in range(len(shown))]


def _checked(flags: list[str], shown: list[int], data: JudgmentInput) -> dict[str, Any]:
    """The judgment's columns, or a ValidationFailed naming the field; nothing is written.

    `flags` are the ones the campaign offers.
    """
    if len(data.rationale) > MAX_RATIONALE:
        raise ValidationFailed(
            f"the rationale is limited to {MAX_RATIONALE} characters", field="rationale"
        )
    flagged = _check_flags(flags, shown, data)
    ranks: list[int] | None = None
    strength: int | None = None
    reason = data.not_rankable_reason.strip()
    if data.not_rankable:
        if not reason:
            raise ValidationFailed("say why none is acceptable", field="not_rankable_reason")
        if len(reason) > MAX_NOT_RANKABLE_REASON:
            raise ValidationFailed(
                f"the reason is limited to {MAX_NOT_RANKABLE_REASON} characters",
                field="not_rankable_reason",
            )
    elif len(shown) == 2:
        if data.scale is None:
            raise ValidationFailed("choose a point on the preference scale", field="scale")
        ranks, strength = ranks_from_scale(data.scale)
    else:
        ranks = _dense_ranks(shown, data.ranks)
    return {
        "shown_order": list(shown),
        "ranks": ranks,
        "strength": strength,
        "not_rankable": data.not_rankable,
        "not_rankable_reason": reason if data.not_rankable else None,
        "flags": flagged,
        "rationale": data.rationale.strip(),
        "time_spent_ms": None if data.time_spent_ms is None else max(0, data.time_spent_ms),
        "idempotency_key": data.idempotency_key,
        "read_to_end": _read_to_end(shown, data.read_to_end),
    }


def check_key(key: str) -> None:
    if not _KEY.match(key):
        raise ValidationFailed(
            "the form is missing its submission key; reload the page", field="idempotency_key"
        )


def _by_key(session: Session, rater: User, key: str) -> Judgment | None:
    return session.scalar(
        select(Judgment).where(Judgment.rater_id == rater.id, Judgment.idempotency_key == key)
    )


def _insert(session: Session, rater: User, judgment: Judgment) -> SubmitResult:
    """Insert; a concurrent twin with the same key loses the race and returns the winner's row."""
    try:
        with session.begin_nested():
            session.add(judgment)
            session.flush()
    except IntegrityError:
        twin = _by_key(session, rater, judgment.idempotency_key)
        if twin is None:
            raise Conflict("this judgment collided with another; reload the page") from None
        return SubmitResult(twin, replayed=True)
    return SubmitResult(judgment, replayed=False)


def own_assignment_locked(rater_id: ColumnElement[int]) -> Select[*tuple[Any, ...]]:
    """SQL: the assignment `assignment_id` if it is `rater_id`'s, locked, with its campaign's
    flags (Locked's columns)."""
    return (
        select(
            Assignment.id,
            Assignment.comparison_id,
            Assignment.state,
            Assignment.display_order,
            Assignment.lease_expires_at,
            Campaign.flags,
            Campaign.id,
            Campaign.gold_rate,
            Campaign.lease_minutes,
        )
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .where(Assignment.id == bindparam("assignment_id"), Assignment.rater_id == rater_id)
        .with_for_update(of=Assignment)
    )


# Built once with bound parameters: building and keying these per submit cost more Python time
# than running them.
_LOCK_OWN = own_assignment_locked(bindparam("rater_id"))
_JUDGMENTS = cast(Table, Judgment.__table__)
_INSERT_FIRST = {
    dialect: insert(_JUDGMENTS).on_conflict_do_nothing().returning(*_JUDGMENTS.c)
    for dialect, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


# The first judgment's INSERT as a CTE named "judged" (PostgreSQL: the rating turn's statement,
# app.web.turn): a bind per column, named after it (first_judgment_binds), RETURNING the new id;
# no row when the rater already used the key.
_FIRST_COLUMNS = [c for c in _JUDGMENTS.c if c.key not in ("id", "supersedes_id")]
FIRST_JUDGMENT_CTE = (
    postgresql_insert(_JUDGMENTS)
    .values({c.key: bindparam(c.key, type_=c.type) for c in _FIRST_COLUMNS})
    .on_conflict_do_nothing()
    .returning(_JUDGMENTS.c.id)
    .cte("judged")
)


def first_judgment_binds(values: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """first_judgment's columns as FIRST_JUDGMENT_CTE's binds: the other columns get their
    defaults, as an INSERT of the model would, and `created_at` is `now`."""
    defaults = {c.key: column_default(c) for c in _FIRST_COLUMNS if c.key not in values}
    return {**defaults, **values, "created_at": now}


class Locked(NamedTuple):
    """The rater's assignment as the lock read it (plain columns: no ORM loading on the hot path)."""

    id: int
    comparison_id: int
    state: str
    display_order: list[int]
    lease_expires_at: datetime
    flags: list[str]  # the campaign's
    campaign_id: int
    gold_rate: float
    lease_minutes: int | None

    def continuing(self) -> Continuing:
        """Its campaign, as the lock read it: where the rater's next comparison comes from."""
        return Continuing(self.campaign_id, self.gold_rate, self.lease_minutes)


def _lock_own(session: Session, rater: User, assignment_id: int) -> Locked:
    """The rater's assignment, locked, with its campaign's flags, in one statement."""
    row = run_core(
        session, _LOCK_OWN, {"assignment_id": assignment_id, "rater_id": rater.id}
    ).one_or_none()
    if row is None:
        raise NotFound("this comparison is not assigned to you", field="assignment_id")
    return Locked(*row)


def _insert_first(session: Session, values: dict[str, Any]) -> Judgment | None:
    """Insert a first judgment; None when the rater already used its key (nothing written).

    ON CONFLICT DO NOTHING instead of a savepoint around the insert: one statement, not three.
    The database marks the assignment submitted in the same statement (the trigger
    judgments_first_submits, migration d8e2a4f6b1c9: no UPDATE of its own, no round trip); a
    loaded copy of the assignment, if the session holds one, is told, as the database now says.
    """
    stmt = _INSERT_FIRST[session.get_bind().dialect.name]
    judgment = loaded(session, stmt, values, Judgment)
    held = session.identity_map.get(session.identity_key(Assignment, values["assignment_id"]))
    if judgment is not None and held is not None:
        set_committed_value(held, "state", AssignmentState.SUBMITTED)
        set_committed_value(held, "completed_at", judgment.created_at)
    return judgment


def judgeable(assignment: Locked) -> bool:
    """Whether the rater may still give `assignment` its first judgment: neither skipped nor
    judged (a lease past its expiry still counts, marked late)."""
    return assignment.state not in (AssignmentState.SKIPPED, AssignmentState.SUBMITTED)


def first_judgment(
    assignment: Locked, *, rater_id: int, data: JudgmentInput, now: datetime
) -> dict[str, Any]:
    """The columns of the rater's first judgment on `assignment` (judgeable), or ValidationFailed."""
    return {
        "comparison_id": assignment.comparison_id,
        "rater_id": rater_id,
        "assignment_id": assignment.id,
        "revision": 0,
        "lease_expired": assignment.lease_expires_at <= now
        or assignment.state == AssignmentState.EXPIRED,
        **_checked(assignment.flags, assignment.display_order, data),
    }


def _replayed(session: Session, rater: User, assignment: Locked, key: str) -> SubmitResult:
    """The judgment this key recorded on the (no longer judgeable) assignment, else Conflict."""
    if assignment.state == AssignmentState.SKIPPED:
        raise Conflict("you skipped this comparison, so it can no longer be judged")
    previous = _by_key(session, rater, key)
    if previous is not None and previous.assignment_id == assignment.id:
        return SubmitResult(previous, replayed=True)
    raise Conflict("you already judged this comparison; correct it from your history")


def submit_judgment(
    session: Session,
    *,
    rater: User,
    assignment_id: int,
    data: JudgmentInput,
    now: datetime | None = None,
) -> SubmitResult:
    """Record the rater's judgment on their assignment, once; a late (expired) lease still counts."""
    now = now or utcnow()
    check_key(data.idempotency_key)
    # The lock makes a double submit wait for the first, then find the assignment submitted.
    assignment = _lock_own(session, rater, assignment_id)
    if not judgeable(assignment):
        return _replayed(session, rater, assignment, data.idempotency_key)
    values = first_judgment(assignment, rater_id=rater.id, data=data, now=now)
    judgment = _insert_first(session, values)
    if judgment is None:
        raise Conflict("this form was already used for another comparison; reload the page")
    return SubmitResult(judgment, replayed=False, continuing=assignment.continuing())


def _is_superseded(session: Session, judgment_id: int) -> bool:
    live = select(Judgment.id).where(Judgment.id == judgment_id, Judgment.is_live())
    return session.scalar(live) is None


def get_live_judgment(session: Session, *, rater: User, judgment_id: int) -> Judgment:
    """The rater's own judgment, if no correction has replaced it."""
    judgment = session.scalar(
        select(Judgment).where(Judgment.id == judgment_id, Judgment.rater_id == rater.id)
    )
    if judgment is None:
        raise NotFound("no such judgment of yours", field="judgment_id")
    if _is_superseded(session, judgment.id):
        raise Conflict("a newer revision of this judgment exists; correct that one")
    return judgment


def correct_judgment(
    session: Session, *, rater: User, judgment_id: int, data: JudgmentInput
) -> SubmitResult:
    """Record a correction as a new revision that supersedes the rater's live judgment."""
    check_key(data.idempotency_key)
    previous = _by_key(session, rater, data.idempotency_key)
    if previous is not None:
        if previous.supersedes_id != judgment_id:
            raise Conflict("this form was already used; reload the page")
        return SubmitResult(previous, replayed=True)
    old = get_live_judgment(session, rater=rater, judgment_id=judgment_id)
    comparison = session.get_one(Comparison, old.comparison_id)
    campaign = session.get_one(Campaign, comparison.campaign_id)
    values = _checked(campaign.flags, old.shown_order, data)
    judgment = Judgment(
        comparison_id=old.comparison_id,
        rater_id=rater.id,
        assignment_id=old.assignment_id,
        revision=old.revision + 1,
        supersedes_id=old.id,
        **values,
    )
    return _insert(session, rater, judgment)


def live_judgments(session: Session, *, rater: User, limit: int = 100) -> list[Judgment]:
    """The rater's own judgments that no correction has replaced, newest first."""
    stmt = (
        select(Judgment)
        .where(Judgment.rater_id == rater.id, Judgment.is_live())
        .options(joinedload(Judgment.comparison).joinedload(Comparison.prompt))
        .order_by(Judgment.created_at.desc(), Judgment.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))

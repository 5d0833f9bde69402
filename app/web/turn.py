"""A rater's turn on PostgreSQL in two statements: the judgment, and the next comparison's page.

The general path (submit_judgment, next_assignment, rate_context) sends five: the rater, their
assignment (locked), the judgment, the claim, the page. Each round trip costs the server more
Python time (driver, SQLAlchemy, event loop) than PostgreSQL spends on most of these statements.
Here the first statement loads the rater with their assignment, locked (a LATERAL join); the
second inserts the judgment, makes the continuing claim and reads the claimed comparison's page
(data-modifying CTEs). The checks and the judgment's columns are the general path's own
functions. What the turn does not cover goes the general way, in the same transaction: anything
but a first judgment of the rater's own assignment (submit_judgment then says what: not found,
a replay, a conflict), and a continuing claim that found nothing (next_assignment's rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, true
from sqlalchemy.orm import Session

from app.db import as_loaded, run_core
from app.models import User, utcnow
from app.services.assignment import (
    Progress,
    claim_after_judgment,
    continuing_claim_params,
    release_if_due,
    utc_day,
)
from app.services.judgments import (
    FIRST_JUDGMENT_CTE,
    JudgmentInput,
    Locked,
    check_key,
    first_judgment,
    first_judgment_binds,
    judgeable,
    own_assignment_locked,
)
from app.web.auth import WebSession, checked_rater
from app.web.views import page_from_rows, page_statement, workspace_context

_USERS = cast(Table, User.__table__)
_OWN = own_assignment_locked(_USERS.c.id).lateral("own")
_RATER_AND_ASSIGNMENT = (
    select(*_USERS.c, *_OWN.c)
    .select_from(_USERS.outerjoin(_OWN, true()))
    .where(_USERS.c.id == bindparam("user_id"))
)
_USER_KEYS = [column.key for column in _USERS.c]


def _judge_and_claim() -> Any:
    """The judgment, the continuing claim and the claimed comparison's page (with the progress
    counts), one statement: a row per response shown, the judgment's id first; one row of NULLs
    after it when nothing was claimed; no row when the judgment was not inserted."""
    judged = FIRST_JUDGMENT_CTE
    claimed = claim_after_judgment(judged).cte("claimed")
    page = (
        page_statement(claimed.c.comparison_id, with_progress=True)
        .add_columns(claimed.c.id, claimed.c.display_order)
        .lateral("page")
    )
    return select(judged.c.id, *page.c).select_from(judged.outerjoin(page, true()))


_JUDGE_AND_CLAIM = _judge_and_claim()


@dataclass(frozen=True)
class Turn:
    """A judgment recorded; the rater's next workspace, or None when the continuing claim found
    nothing (next_assignment decides what comes next)."""

    rater: User
    workspace: dict[str, Any] | None


def judge_and_show_next(
    session: Session, *, web: WebSession, assignment_id: int, data: JudgmentInput,
    now: datetime | None = None,
) -> Turn | None:
    """The rater's first judgment on their assignment, recorded, and their next workspace; None
    where the general path must run (nothing was written). Unauthorized, Forbidden and
    ValidationFailed as the general path raises them."""
    if session.get_bind().dialect.name != "postgresql" or web.user_id is None:
        return None
    now = now or utcnow()
    params = {"user_id": web.user_id, "assignment_id": assignment_id}
    row = run_core(session, _RATER_AND_ASSIGNMENT, params).one_or_none()
    user = None
    if row is not None:
        user = as_loaded(session, User, dict(zip(_USER_KEYS, row[: len(_USER_KEYS)], strict=True)))
    rater = checked_rater(user, web)  # who it is, before what they sent is judged
    check_key(data.idempotency_key)
    assert row is not None
    own = row[len(_USER_KEYS) :]
    if own[0] is None or not judgeable(assignment := Locked(*own)):
        return None
    values = first_judgment(assignment, rater_id=rater.id, data=data, now=now)
    release_if_due(session, now=now)
    binds = {
        **first_judgment_binds(values, now=now),
        **continuing_claim_params(rater.id, assignment.continuing(), now=now),
        "today": utc_day(now),
    }
    rows = run_core(session, _JUDGE_AND_CLAIM, binds).all()
    if not rows:
        return None  # the key was used for another judgment: nothing written
    page_rows = [r[1:] for r in rows]
    claimed_id, shown = page_rows[0][-2:]
    if claimed_id is None:
        return Turn(rater, None)
    page = page_from_rows(session, page_rows, shown, _after_this_turn)
    return Turn(rater, workspace_context(rater=rater, assignment_id=claimed_id, shown=shown,
                                         page=page))


def _after_this_turn(today: int, in_campaign: int, open_places: int) -> Progress:
    """The progress line from counts read by the turn's statement, which does not see its own
    writes: the judgment is one more first judgment today and in the campaign (what the
    rater tallies' trigger adds), the claim took one of the open places and holds it."""
    return Progress(today + 1, in_campaign + 1, max(open_places - 1, 0) + 1)

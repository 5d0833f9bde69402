"""app.db.run_core: hot statements sent on the driver's cursor behave as SQLAlchemy's execute."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import (
    Engine,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app import db as db_module
from app.db import _driver_plan, loaded, run_core
from app.models import Assignment, User, utcnow
from app.services import judgments
from app.services.assignment import next_assignment
from tests.factories import make_campaign, make_comparisons, make_user


def _keys(params: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(params))


def test_a_driver_statement_returns_the_rows_sqlalchemy_returns(db: Session) -> None:
    """JSON lists, time zones, strings and ids come back as SQLAlchemy gives them."""
    campaign = make_campaign(db, overlap=2, flags=["unsafe", "incomplete"])
    make_comparisons(db, campaign, count=2)
    rater = make_user(db)
    assignment = next_assignment(db, rater=rater)
    assert assignment is not None
    params = {"assignment_id": assignment.id, "rater_id": rater.id}
    connection = db.connection()
    assert _driver_plan(connection, judgments._LOCK_OWN, _keys(params)) is not None
    by_driver = run_core(db, judgments._LOCK_OWN, params).all()
    by_sqlalchemy = [tuple(row) for row in connection.execute(judgments._LOCK_OWN, params)]
    assert by_driver == by_sqlalchemy
    (row,) = by_driver
    assert row[3] == assignment.display_order and row[4].tzinfo is not None
    assert row[5] == campaign.flags and "unsafe" in row[5]


# A literal among the caller's binds (as the claim's state is): its value is the driver plan's
# own after the first run; the caller's values must still be this run's.
_WITH_A_LITERAL = select(User.id, literal("fixed", String), bindparam("tag", type_=String)).where(
    User.id == bindparam("user_id")
)


def test_a_statement_with_literals_gets_each_runs_own_values(db: Session) -> None:
    users = [make_user(db), make_user(db)]
    connection = db.connection()
    for run, user in enumerate(users * 2):
        params = {"user_id": user.id, "tag": f"run {run}"}
        by_driver = run_core(db, _WITH_A_LITERAL, params).all()
        by_sqlalchemy = [tuple(row) for row in connection.execute(_WITH_A_LITERAL, params)]
        assert by_driver == by_sqlalchemy == [(user.id, "fixed", f"run {run}")]


_ASSIGNMENTS = cast(Table, Assignment.__table__)
_INSERT_ASSIGNMENT = insert(_ASSIGNMENTS).returning(*_ASSIGNMENTS.c)  # built once, as hot ones are


def test_an_insert_gets_its_python_side_defaults_on_the_driver(db: Session) -> None:
    """created_at (a function) and state (a value) are filled in as SQLAlchemy would."""
    campaign = make_campaign(db, overlap=2)
    (comparison,) = make_comparisons(db, campaign, count=1)
    rater = make_user(db)
    values = {
        "comparison_id": comparison.id,
        "rater_id": rater.id,
        "display_order": [1, 2],
        "lease_expires_at": utcnow() + timedelta(minutes=5),
    }
    stmt = _INSERT_ASSIGNMENT
    assert _driver_plan(db.connection(), stmt, _keys(values)) is not None
    before = utcnow()
    placed = loaded(db, stmt, values, Assignment)
    assert placed is not None and placed.state == "leased" and placed.created_at >= before
    assert db.get(Assignment, placed.id) is placed


def test_the_engines_listeners_see_each_driver_statement(db: Session) -> None:
    """Statement counts (tests, bench/statement_counter) and tracing see the driver's statements."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    user = make_user(db)
    connection = db.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        run_core(db, select(User.id).where(User.id == user.id), {})
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert len(seen) == 1 and seen[0].startswith("SELECT users.id")


def test_a_driver_error_is_sqlalchemys_error(db: Session) -> None:
    """A unique violation is sqlalchemy's IntegrityError (what the services catch)."""
    user = make_user(db)
    users = User.__table__
    assert isinstance(users, Table)
    row = {c.key: getattr(user, c.key) for c in users.c if c.key != "id"}
    with pytest.raises(IntegrityError), db.begin_nested():
        run_core(db, insert(users), row)


def test_an_expanding_statement_falls_back_to_sqlalchemy(db: Session) -> None:
    """An IN list rendered at execution is not compiled once: SQLAlchemy runs it, same rows."""
    users = [make_user(db) for _ in range(3)]
    stmt = select(User.id).where(User.id.in_([u.id for u in users[:2]])).order_by(User.id)
    assert _driver_plan(db.connection(), stmt, ()) is None
    assert run_core(db, stmt, {}).all() == [(users[0].id,), (users[1].id,)]


def test_loaded_returns_the_sessions_own_copy(db: Session) -> None:
    """A row the session already holds comes back as that object, as a query would give it."""
    user = make_user(db)
    stmt = select(*User.__table__.c).where(User.id == user.id)
    assert loaded(db, stmt, {}, User) is user
    db.expunge(user)
    fresh = loaded(db, stmt, {}, User)
    assert fresh is not user and fresh is not None and fresh.email == user.email
    assert fresh in db and not db.dirty and not db.new


def test_a_dropped_connection_is_an_operational_error_and_is_not_reused(engine: Engine) -> None:
    """The database ending the connection mid-request: sqlalchemy's OperationalError (the app's
    503), and the pool opens a fresh connection for the next session."""
    own = create_engine(engine.url, pool_size=1, max_overflow=0)
    try:
        with Session(own) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(OperationalError):
                run_core(session, select(User.id).where(User.id == 0), {})
        with Session(own) as session:
            assert run_core(session, select(User.id).where(User.id == 0), {}).all() == []
    finally:
        own.dispose()


def test_statements_built_per_call_stop_filling_the_plan_cache(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap, a statement the cache has not seen runs through SQLAlchemy (same rows)."""
    user = make_user(db)
    monkeypatch.setattr(db_module, "_driver_plans", {})
    monkeypatch.setattr(db_module, "MAX_DRIVER_PLANS", 1)
    first = select(User.id).where(User.id == user.id)
    second = select(User.email).where(User.id == user.id)
    assert run_core(db, first, {}).all() == [(user.id,)]
    assert run_core(db, second, {}).all() == [(user.email,)]
    assert list(db_module._driver_plans) == [(id(first), "postgresql", ())]


# A bind used twice and a percent sign in the SQL: the driver gets PostgreSQL's own numbered
# placeholders (app.db._numbered), converted once.
_REUSED_BIND = select(User.id, literal_column("'100%'"), bindparam("tag", type_=String)).where(
    User.id == bindparam("user_id"), User.email.like("%@%"), User.id >= bindparam("user_id")
)


def test_a_reused_bind_and_a_percent_sign_reach_the_driver_intact(db: Session) -> None:
    user = make_user(db)
    params = {"user_id": user.id, "tag": "50% off"}
    plan = _driver_plan(db.connection(), _REUSED_BIND, _keys(params))
    assert plan is not None
    user_id = f"${plan.order.index('user_id') + 1}"  # one parameter, used in both places
    assert plan.raw_sql.count(f"{user_id}::") == 2
    by_driver = run_core(db, _REUSED_BIND, params).all()
    by_sqlalchemy = [tuple(row) for row in db.connection().execute(_REUSED_BIND, params)]
    assert by_driver == by_sqlalchemy == [(user.id, "100%", "50% off")]

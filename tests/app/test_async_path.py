"""run_in_transaction on PostgreSQL: the routes every judgment takes run their sync services on
the event loop (psycopg's async connection), without a thread hop; elsewhere in a worker thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.orm import Session

from app.db import _async_engines, get_sessionmaker, pause, run_in_transaction
from app.main import create_app
from app.migrate import upgrade
from app.models import Judgment, User
from app.services import assignment as assignment_service
from tests.factories import make_campaign, make_comparisons, make_user
from tests.web import HTML, HX, form_of, login


def _users(session: Session) -> int:
    return session.scalar(select(func.count(User.id))) or 0


def test_work_runs_on_the_event_loop_thread_and_commits(committed_engine: Engine) -> None:
    app = create_app()
    ran_on: list[int] = []

    def work(session: Session) -> int:
        ran_on.append(threading.get_ident())
        return make_user(session, email="loop@example.org").id

    async def main() -> int:
        try:
            return await run_in_transaction(app, work)
        finally:
            engine = _async_engines.get(asyncio.get_running_loop())
            assert engine is not None, "the async engine was not used"
            await engine.dispose()

    user_id = asyncio.run(main())
    assert ran_on == [threading.get_ident()]  # asyncio.run's loop runs on this thread
    with Session(committed_engine) as session:
        assert session.get(User, user_id) is not None


def test_work_that_raises_leaves_nothing_behind(committed_engine: Engine) -> None:
    app = create_app()

    def work(session: Session) -> None:
        make_user(session, email="rolled-back@example.org")
        session.flush()
        raise ValueError("refused")

    async def main() -> None:
        try:
            with pytest.raises(ValueError, match="refused"):
                await run_in_transaction(app, work)
        finally:
            await _async_engines[asyncio.get_running_loop()].dispose()

    asyncio.run(main())
    with Session(committed_engine) as session:
        assert _users(session) == 0


def test_a_pause_in_a_service_lets_other_requests_run(committed_engine: Engine) -> None:
    """A claim waiting for others' claims to commit (pause) must not stop the event loop."""
    app = create_app()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(40):  # ticks past the pause, however long the connect took
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    def work(_session: Session) -> float:
        started = time.monotonic()
        pause(0.2)
        return started

    async def main() -> float:
        try:
            task = asyncio.create_task(ticker())
            started = await run_in_transaction(app, work)
            await task
            return started
        finally:
            await _async_engines[asyncio.get_running_loop()].dispose()

    started = asyncio.run(main())
    during = [t for t in ticks if started <= t <= started + 0.2]
    assert len(during) >= 5  # time.sleep would have let none run


def test_without_an_async_driver_work_runs_in_a_worker_thread(
    tmp_path: Path, point_app_at: Callable[[str], None]
) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    upgrade(url)
    point_app_at(url)
    app = create_app()
    ran_on: list[int] = []

    def work(session: Session) -> int:
        ran_on.append(threading.get_ident())
        make_user(session, email="sqlite@example.org")
        return _users(session)

    assert asyncio.run(run_in_transaction(app, work)) == 1
    assert ran_on and ran_on[0] != threading.get_ident()
    with get_sessionmaker()() as session:
        assert _users(session) == 1  # committed


@pytest.fixture
def rater_client(committed_engine: Engine) -> Iterator[tuple[TestClient, str]]:
    """The real app (no session override) and a rater with a campaign to rate."""
    with Session(committed_engine) as session, session.begin():
        campaign = make_campaign(session, overlap=1)
        make_comparisons(session, campaign, count=3)
        email = make_user(session).email
    with TestClient(create_app()) as client:
        yield client, email


def test_a_rater_judges_through_the_async_path(
    rater_client: tuple[TestClient, str], committed_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, email = rater_client
    assert login(client, email).status_code == 303
    fields = form_of(client.get("/rate", headers=HTML).text)
    monkeypatch.setattr(assignment_service, "_released_at", [time.monotonic()])
    statements: list[tuple[str, bool]] = []

    def count(conn: Connection, _cursor: object, sql: str, *_args: object) -> None:
        statements.append((sql, conn.dialect.is_async))

    event.listen(Engine, "before_cursor_execute", count)
    try:
        submit = client.post("/rate/submit", headers=HX, data={**fields, "scale": "-2"})
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert submit.status_code == 200 and "assignment_id" in submit.text
    assert form_of(submit.text)["assignment_id"] != fields["assignment_id"]
    assert len(statements) == 2, statements  # as on the thread path (test_hot_path.py)
    assert all(on_async for _sql, on_async in statements)
    with Session(committed_engine) as session:
        (judgment,) = session.scalars(select(Judgment)).all()
        assert judgment.ranks == [0, 1] and judgment.strength == 2
        assert judgment.assignment_id == int(fields["assignment_id"])

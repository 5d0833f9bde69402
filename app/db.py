"""Engine, sessions, one transaction per request, and the database checks commands rely on."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI
from sqlalchemy import CursorResult, Engine, Executable, Insert, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.config import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: say nothing of its contents
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys unless asked; WAL lets the demo server read while writing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def build_engine(
    url: str, *, pool_size: int = 10, pool_timeout: float = 30, ping_after_idle_s: float = 1.0
) -> Engine:
    """An engine for `url` with the per-dialect settings prefloop relies on; a pooled connection
    idle for `ping_after_idle_s` or longer is pinged before use (0: every checkout)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Requests hold at most `pool_size` connections (see _gate); the overflow is for the CLI,
    # health checks and anything else that opens a session outside a request.
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=5, pool_timeout=pool_timeout
    )
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", partial(_ping_if_idle, engine.dialect, ping_after_idle_s))
    return engine


# The web app pings a connection that sat in the pool a second or more (a database restart while
# it sat is then a fresh connection, not an error): under load connections come back within
# milliseconds, and pinging each checkout (pool_pre_ping) was a round trip on every request.


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(
    dialect: Any, after_s: float, dbapi_connection: Any, record: Any, _proxy: Any
) -> None:
    if after_s > 0 and time.monotonic() - record.info.get("checked_in", float("-inf")) < after_s:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError(str(exc)) from exc


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    return build_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
    )


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The process-wide session factory."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def worker_sessionmaker() -> sessionmaker[Session]:
    """Sessions for a training worker: every checkout pinged, since a worker's few statements
    are minutes apart and a restart between two of them must mean a fresh connection, whenever
    the last one was used."""
    settings = get_settings()
    engine = build_engine(settings.database_url, pool_size=2, ping_after_idle_s=0)
    return sessionmaker(bind=engine, expire_on_commit=False)


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    """This event loop's limit on requests holding a session (one per loop: tests run several)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(get_settings().db_pool_size)
    return gate


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok and session.in_transaction():
            session.commit()
    finally:
        session.close()


async def get_session() -> AsyncIterator[Session]:
    """One session and one transaction per request: committed on success, rolled back on error.

    A request waits for a place *on the event loop* before it may hold a session, and there are
    no more places than pooled connections. Sync dependencies and the endpoint run on different
    threadpool threads, so a request that holds a connection needs another thread later; if
    threads could block waiting for the pool, every thread could end up waiting for connections
    held by requests that wait for a thread (the stall that turned into 500s at 100 raters).
    With the gate, no thread ever waits for the pool. A route may commit early (before it
    renders, so that no row lock is held while it does); what is left is committed here.
    """
    async with _gate():
        session = get_sessionmaker()()
        ok = False
        try:
            yield session
            ok = True
        finally:
            # Shielded: a client that disconnects must not leave the connection checked out.
            with anyio.CancelScope(shield=True):
                if session.in_transaction():
                    await run_in_threadpool(_finish, session, ok)
                else:  # committed by the route already: closing sends nothing, no thread needed
                    session.close()


# "function" scope: the transaction commits *before* the response is sent, so whatever a user
# saw accepted is already in the database (FastAPI's default "request" scope commits after).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# For streamed responses that keep reading while they send: the session lives until the end.
StreamingSessionDep = Annotated[Session, Depends(get_session, scope="request")]


M = TypeVar("M")


def run_core(
    session: Session, stmt: Executable, params: dict[str, Any]
) -> CursorResult[*tuple[Any, ...]]:
    """A Core statement (plain rows, no ORM entities) on the session's connection and transaction.

    Session.execute sends even a Core statement through the ORM's execute path: ~85 us a
    statement of Python time measured on this machine, more than PostgreSQL spends on most of
    the hot path's statements.
    """
    return session.connection().execute(stmt, params)


def inserted(session: Session, stmt: Insert, values: dict[str, Any], model: type[M]) -> M | None:
    """Run a one-row INSERT that returns every column of `model`'s table; the row as a clean,
    persistent object (no unit-of-work flush, no second query), or None when nothing was
    inserted (ON CONFLICT DO NOTHING). For the hot path, where a flush cost more than its SQL."""
    row = run_core(session, stmt, values).one_or_none()
    if row is None:
        return None
    instance = model(**row._mapping)
    make_transient_to_detached(instance)  # as if loaded by a query: nothing left to flush
    session.add(instance)
    return instance


@contextmanager
def transaction() -> Iterator[Session]:
    """A session in one transaction, committed when the block succeeds."""
    with get_sessionmaker()() as session, session.begin():
        yield session


def session_opener(app: FastAPI) -> Callable[[], AbstractContextManager[Session]]:
    """Open a short transaction outside a route's dependencies (or in the test's override).

    Tests replace get_session with their rolled-back session; this honours that override.
    """
    override = app.dependency_overrides.get(get_session)
    return contextmanager(override) if override is not None else transaction


async def run_in_transaction(app: FastAPI, work: Callable[[Session], T]) -> T:
    """`work(session)` in a worker thread, in its own short transaction, behind the request gate.

    For work that must not hold a connection for the whole request (a login's two steps around
    its argon2 check) or that runs before the body is read (API write tokens).
    """
    opener = session_opener(app)

    def run() -> T:
        with opener() as session:
            return work(session)

    async with _gate():
        return await run_in_threadpool(run)

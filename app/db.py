"""Engine, sessions, one transaction per request, and the database checks commands rely on."""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import anyio
import psycopg
from fastapi import Depends, FastAPI
from sqlalchemy import (
    Column,
    ColumnDefault,
    Connection,
    Engine,
    Executable,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.exc import DBAPIError, DisconnectionError, MultipleResultsFound
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    create_async_engine,
)
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet
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


# The web app pings a connection that sat in the pool this long or more (see _ping_if_idle).
PING_AFTER_IDLE_S = 1.0


def build_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 30,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
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


def _has_async_driver(url: str) -> bool:
    return make_url(url).drivername == "postgresql+psycopg"


# One async engine per event loop (its connections belong to the loop that opened them): the
# server's worker has one loop; tests start several.
_async_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
    weakref.WeakKeyDictionary()
)
_loop_makers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, sessionmaker[Session] | None
] = weakref.WeakKeyDictionary()


def _loop_sessionmaker() -> sessionmaker[Session] | None:
    """Sync sessions on this event loop's async engine (psycopg's async connections), to run in
    a greenlet, or None where the database has no async driver here (the SQLite demo). Made
    once per loop: every rating request asks, and parsing the URL and building the factory each
    time was ~1% of its CPU."""
    loop = asyncio.get_running_loop()
    if loop not in _loop_makers:
        _loop_makers[loop] = _new_loop_sessionmaker(loop)
    return _loop_makers[loop]


def _new_loop_sessionmaker(loop: asyncio.AbstractEventLoop) -> sessionmaker[Session] | None:
    settings = get_settings()
    if not _has_async_driver(settings.database_url):
        return None
    engine = _async_engines[loop] = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,  # the gate admits no more requests than this
        pool_timeout=settings.db_pool_timeout,
    )
    event.listen(engine.sync_engine, "checkin", _checked_in)
    ping = partial(_ping_if_idle, engine.dialect, PING_AFTER_IDLE_S)
    event.listen(engine.sync_engine, "checkout", ping)
    # What an AsyncSession holds inside: a sync Session on the async engine's sync face.
    return sessionmaker(bind=engine.sync_engine, expire_on_commit=False)


async def dispose_async_engine() -> None:
    """Close this event loop's async connections (at the app's shutdown)."""
    loop = asyncio.get_running_loop()
    _loop_makers.pop(loop, None)
    engine = _async_engines.pop(loop, None)
    if engine is not None:
        await engine.dispose()


def pause(seconds: float) -> None:
    """Wait `seconds` in a service: without blocking the event loop when the service runs on it
    (run_in_transaction's async path), else by sleeping the worker thread."""
    if in_greenlet():
        await_(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


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


class Rows:
    """A statement's rows, fetched: plain tuples and their column names."""

    __slots__ = ("keys", "rows")

    def __init__(self, keys: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.keys = keys
        self.rows = rows

    def all(self) -> list[tuple[Any, ...]]:
        return self.rows

    def one_or_none(self) -> tuple[Any, ...] | None:
        if len(self.rows) > 1:
            raise MultipleResultsFound("more than one row where at most one was expected")
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)


class _DriverPlan:
    """One statement compiled once for one dialect and set of parameter names, run on the
    driver's cursor: the SQL text, the bound values' conversions, the result's conversions."""

    __slots__ = (
        "compiled",
        "sql",
        "raw_sql",
        "order",
        "defaults",
        "bind_processors",
        "result_processors",
        "keys",
        "statement",
        "fixed_values",
        "reuse_fixed",
    )

    def __init__(
        self, statement: Executable, compiled: Compiled, defaults: list[tuple[str, Any]]
    ) -> None:
        self.statement = statement  # kept alive: the cache is keyed by its id
        self.compiled = compiled
        self.defaults = defaults  # (column key, its ColumnDefault): values made in Python
        self.sql = compiled.string
        self.raw_sql, self.order = _numbered(self.sql)
        dialect = compiled.dialect
        escaped = getattr(compiled, "escaped_bind_names", {}) or {}
        self.bind_processors = [
            (escaped.get(name, name), processor)
            for name, bind in getattr(compiled, "binds", {}).items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self.result_processors: list[Callable[[Any], Any] | None] | None = None
        self.keys: list[str] = []
        # The values of the binds the caller does not give (literals), taken from the first
        # run's construct_params: the same every run, and building them was ~2% of a judgment.
        # Not where a bind is computed per run (callable) or renamed (escaped): SQLAlchemy's.
        self.fixed_values: dict[str, Any] | None = None
        binds = getattr(compiled, "binds", {}).values()
        self.reuse_fixed = not escaped and not any(bind.callable for bind in binds)

    def _values(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.fixed_values is not None:
            return {**self.fixed_values, **params}
        values = dict(self.compiled.construct_params(params) or {})
        if self.reuse_fixed:
            self.fixed_values = {k: v for k, v in values.items() if k not in params}
        return values

    def run(self, connection: Connection, params: dict[str, Any]) -> Rows:
        if self.defaults:  # an INSERT's column defaults computed in Python (created_at = now)
            params = {**params, **{key: _default_value(d) for key, d in self.defaults}}
        values = self._values(params)
        for name, processor in self.bind_processors:
            values[name] = processor(values[name])
        dialect = connection.dialect
        dbapi_connection: Any = connection.connection.dbapi_connection
        # psycopg's own connection: under the async path SQLAlchemy's sync face wraps an
        # AsyncConnection, whose cursor is driven here in one trip to the event loop.
        driver: Any = connection.connection.driver_connection
        asynchronous = isinstance(driver, psycopg.AsyncConnection)
        cursor: Any = (psycopg.AsyncRawCursor if asynchronous else psycopg.RawCursor)(driver)
        # The engine's listeners see the statement as if SQLAlchemy sent it (statement counts).
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, cursor, self.sql, values, None, False)
        args = [values[name] for name in self.order]
        describe = self.result_processors is None  # the first run: the result's types
        try:
            if asynchronous:
                rows, description = await_(
                    _fetched_async(cursor, self.raw_sql, args, describe))
            else:
                rows, description = _fetched(cursor, self.raw_sql, args, describe)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, cursor):
                connection.invalidate(exc)
            raise DBAPIError.instance(self.sql, values, exc, dialect.loaded_dbapi.Error) from exc
        converted = self._convert(dialect, description, rows)
        return Rows(self.keys, converted)

    def _convert(
        self, dialect: Dialect, description: Any, rows: list[tuple[Any, ...]] | None
    ) -> list[tuple[Any, ...]]:
        if rows is None:
            return []
        if self.result_processors is None:  # the first run: the driver's column types are known
            types = [column.type for column in self.statement.exported_columns]  # type: ignore[attr-defined]
            self.keys = [column.name for column in description]
            self.result_processors = [
                type_.dialect_impl(dialect).result_processor(dialect, column.type_code)
                for type_, column in zip(types, description, strict=True)
            ]
        if not any(self.result_processors):
            return rows
        processors = self.result_processors
        return [
            tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True))
            for row in rows
        ]


# SQLAlchemy's psycopg placeholders, %(name)s, and its escaped percent sign.
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s|%%")


def _numbered(sql: str) -> tuple[str, list[str]]:
    """The statement with PostgreSQL's own $1, $2... placeholders, and the bind name of each
    (a name used twice is one parameter). psycopg converts %(name)s placeholders on every run,
    and caches the conversion only for statements under 4 KB: the turn's is longer, and its
    conversion was ~9% of the server's CPU a judgment. Converted once here, for a raw cursor."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    return _PLACEHOLDER.sub(number, sql), list(numbers)


def _fetched(
    cursor: psycopg.RawCursor[Any], sql: str, args: list[Any], describe: bool
) -> tuple[list[Any] | None, Any]:
    """The result's rows (None where it has none) and, if asked, its description (psycopg builds
    it afresh each time it is read); the cursor closed."""
    with cursor:
        cursor.execute(sql, args)
        rows = cursor.fetchall() if _has_rows(cursor) else None
        return rows, cursor.description if describe else None


async def _fetched_async(
    cursor: psycopg.AsyncRawCursor[Any], sql: str, args: list[Any], describe: bool
) -> tuple[list[Any] | None, Any]:
    """_fetched on an async cursor."""
    async with cursor:
        await cursor.execute(sql, args)
        rows = await cursor.fetchall() if _has_rows(cursor) else None
        return rows, cursor.description if describe else None


def _has_rows(cursor: Any) -> bool:
    result = cursor.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK


# Plans are cached by the statement's identity: for statements built once (module constants,
# as the hot path's are). The cap keeps a caller that builds its statements per call from
# growing the cache: past it, new statements go through SQLAlchemy.
_driver_plans: dict[tuple[int, str, tuple[str, ...]], _DriverPlan | None] = {}
MAX_DRIVER_PLANS = 256


def _driver_plan(
    connection: Connection, stmt: Executable, keys: tuple[str, ...]
) -> _DriverPlan | None:
    """The statement's plan for the driver, or None where SQLAlchemy must run it: a dialect other
    than psycopg's, parameters rendered at execution (expanding IN), a default other than a
    value or a plain function (a sequence, SQL run first)."""
    dialect = connection.dialect
    cache_key = (id(stmt), dialect.name, keys)
    if cache_key in _driver_plans:
        return _driver_plans[cache_key]
    if len(_driver_plans) >= MAX_DRIVER_PLANS:
        return None
    plan = None
    if dialect.driver in ("psycopg", "psycopg_async"):
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        prefetch = [
            *getattr(compiled, "insert_prefetch", ()),
            *getattr(compiled, "update_prefetch", ()),
        ]
        defaults = [(column.key, column.default) for column in prefetch]
        rendered_late = getattr(compiled, "post_compile_params", None) or getattr(
            compiled, "literal_execute_params", None
        )
        simple_defaults = all(
            isinstance(default, ColumnDefault) and (default.is_scalar or default.is_callable)
            for _key, default in defaults
        )
        if simple_defaults and not rendered_late and not compiled.positional:
            plan = _DriverPlan(stmt, compiled, defaults)
    _driver_plans[cache_key] = plan
    return plan


def _default_value(default: ColumnDefault) -> Any:
    # A callable default is stored wrapped to take an execution context; ours ignore it.
    return default.arg(None) if default.is_callable else default.arg


def column_default(column: Column[Any]) -> Any:
    """The value an INSERT that leaves `column` out stores: its Python-side default, else None."""
    default = column.default
    return _default_value(default) if isinstance(default, ColumnDefault) else None


def run_core(session: Session, stmt: Executable, params: dict[str, Any]) -> Rows:
    """A Core statement (plain rows, no ORM entities) on the session's connection and transaction,
    fetched.

    On PostgreSQL the statement is compiled once and sent on the driver's cursor: SQLAlchemy's
    execute path (its execution context, result and row objects) cost ~100 us a statement of
    Python time on the hot path, about as much as the driver and more than PostgreSQL spends on
    most of its statements. The engine's before_cursor_execute listeners still see it; its
    errors are SQLAlchemy's (DBAPIError and subclasses), a dropped connection is invalidated.
    Elsewhere (SQLite), SQLAlchemy runs it.
    """
    connection = session.connection()
    plan = _driver_plan(connection, stmt, tuple(sorted(params)))
    if plan is not None:
        return plan.run(connection, params)
    result = connection.execute(stmt, params)
    if not result.returns_rows:
        return Rows([], [])
    return Rows(list(result.keys()), [tuple(row) for row in result])


def loaded(session: Session, stmt: Executable, params: dict[str, Any], model: type[M]) -> M | None:
    """Run a statement that returns at most one row of every column of `model`'s table; the row
    as a clean, persistent object, as a query would load it (the session's copy if it holds one),
    or None. Without the ORM's loading: the hot path's user, and its one-row INSERTs with
    RETURNING (no unit-of-work flush, no second query; None when ON CONFLICT DO NOTHING
    inserted nothing)."""
    result = run_core(session, stmt, params)
    row = result.one_or_none()
    if row is None:
        return None
    return as_loaded(session, model, dict(zip(result.keys, row, strict=True)))


def as_loaded(session: Session, model: type[M], values: dict[str, Any]) -> M:
    """A row of every column of `model`'s table (by column key) as a clean, persistent object in
    the session, as a query would load it (the session's copy if it holds one): see loaded."""
    mapper = inspect(model)
    identity = mapper.identity_key_from_primary_key([values[c.key] for c in mapper.primary_key])
    held = session.identity_map.get(identity)
    if held is not None:
        return cast(M, held)
    # The columns go straight into a new instance's state, as the ORM's own loading puts them:
    # through the constructor each one fired a change event (~1% of a judgment's CPU a row).
    instance: M = mapper.class_manager.new_instance()
    instance_state(instance).dict.update(values)
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


def _committed(session: Session, work: Callable[[Session], T]) -> T:
    result = work(session)
    if session.in_transaction():  # a route may have committed already (before rendering)
        session.commit()
    return result


def _in_new_session(maker: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    with maker() as session:  # closed (rolled back if need be) however the work ends
        return _committed(session, work)


async def run_in_transaction(app: FastAPI, work: Callable[[Session], T]) -> T:
    """`work(session)` in its own short transaction, behind the request gate: committed when it
    returns, rolled back when it raises.

    On PostgreSQL, on the event loop: the sync session runs on psycopg's async connection (in a
    greenlet, SQLAlchemy's asyncio bridge), so the request takes no thread hop and no thread
    contends for the interpreter lock; requests interleave at their statements, in the order
    their results arrive. Elsewhere (the SQLite demo, a test's session override) in a worker
    thread. For the routes every judgment takes, for work that must not hold a connection for
    the whole request (a login's two steps around its argon2 check), and for work that runs
    before the body is read (API write tokens).
    """
    async with _gate():
        maker = None if get_session in app.dependency_overrides else _loop_sessionmaker()
        if maker is not None:
            # One greenlet for the work, its commit and the session's close (an AsyncSession
            # would spawn a second one to close it, and cost its own set-up: ~2% of a judgment).
            return await greenlet_spawn(_in_new_session, maker, work)
        opener = session_opener(app)

        def run() -> T:
            with opener() as session:
                return work(session)

        return await run_in_threadpool(run)

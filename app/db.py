"""Engine, sessions, one transaction per request, and the database checks commands rely on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def build_engine(url: str) -> Engine:
    """An engine for `url` with the per-dialect settings prefloop relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return build_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The process-wide session factory."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_session() -> Iterator[Session]:
    """One session and one transaction per request: committed on success, rolled back on error."""
    with get_sessionmaker()() as session, session.begin():
        yield session


# "function" scope: the transaction commits *before* the response is sent, so whatever a user
# saw accepted is already in the database (FastAPI's default "request" scope commits after).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# For streamed responses that keep reading while they send: the session lives until the end.
StreamingSessionDep = Annotated[Session, Depends(get_session, scope="request")]


@contextmanager
def transaction() -> Iterator[Session]:
    """A session in one transaction, committed when the block succeeds."""
    with get_sessionmaker()() as session, session.begin():
        yield session


def session_opener(app: FastAPI) -> Callable[[], AbstractContextManager[Session]]:
    """Open a short transaction outside a route's dependencies (or in the test's override).

    For work that must not hold a connection for the whole request (the login's argon2 check) or
    that runs before the body is read (API token checks). Tests replace get_session with their
    rolled-back session; this honours that override.
    """
    override = app.dependency_overrides.get(get_session)
    return contextmanager(override) if override is not None else transaction

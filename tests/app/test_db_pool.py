"""The pool pings a connection that sat idle (a restart meanwhile is not an error), not every one."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from app import db
from app.db import build_engine


def _terminate(pg_url: str, pid: int) -> None:
    other = build_engine(pg_url)
    with other.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_a_connection_killed_while_idle_in_the_pool_is_replaced_not_an_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = build_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(pg_url, pid)  # as a database restart does to every pooled connection
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # it has been idle long enough
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


def test_a_connection_back_from_a_request_moments_ago_is_not_pinged(pg_url: str) -> None:
    engine = build_engine(pg_url, pool_size=1)
    sent: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        pings = []
        original = engine.dialect.do_ping
        engine.dialect.do_ping = lambda c: pings.append(c) or original(c)  # type: ignore[method-assign]
        with engine.connect() as conn:
            conn.execute(text("SELECT 2"))
        assert pings == [] and sent == ["SELECT 2"]
    finally:
        engine.dispose()

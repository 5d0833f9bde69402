"""The pool pings a connection that sat idle (a restart meanwhile is not an error), not every one."""

from __future__ import annotations

import time

from sqlalchemy import event, text

from app.db import build_engine


def _terminate(pg_url: str, pid: int) -> None:
    other = build_engine(pg_url)
    with other.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_a_connection_killed_while_idle_in_the_pool_is_replaced_not_an_error(pg_url: str) -> None:
    engine = build_engine(pg_url, pool_size=1, ping_after_idle_s=0.2)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(pg_url, pid)  # as a database restart does to every pooled connection
        time.sleep(0.3)  # it has now been idle long enough to be pinged
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

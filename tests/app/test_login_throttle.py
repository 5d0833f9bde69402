"""Login throttling: backoff that a stranger cannot turn into a lockout, one message, audited.

Most tests drive the two transactions of a login (`begin_login`, `finish_login`) with an explicit
address and clock, so they need no argon2; the HTTP tests check the 401/429 pages themselves.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.models import AuditEvent, LoginThrottle, User, utcnow
from app.services import auth
from app.services.auth import WRONG_CREDENTIALS, begin_login, finish_login
from app.services.users import set_active, set_password
from tests.factories import PASSWORD, make_user
from tests.web import login

STRANGER = "203.0.113.9"
PHYSICIAN = "198.51.100.7"


def attempt(db: Session, email: str, address: str, *, right: bool, now: datetime) -> int | bool:
    """One login attempt: the wait (int) when throttled, else True/False for success."""
    started = begin_login(db, email=email, address=address, now=now)
    if started.retry_after:
        return started.retry_after
    known = started.user_id is not None
    outcome = finish_login(db, attempt=started, email=email, password=PASSWORD, address=address,
                           verified=right and known, now=now)
    return outcome.user is not None


def test_a_stranger_hammering_one_account_cannot_keep_the_physician_out(db: Session) -> None:
    user = make_user(db)
    now = utcnow()
    answers = []
    for i in range(200):  # ~20 requests an hour used to lock for good; this is 200 in 200 seconds
        answers.append(attempt(db, user.email, STRANGER, right=False, now=now + timedelta(seconds=i)))
    assert answers[:5] == [False] * 5
    assert any(isinstance(a, int) and a is not False and a > 0 for a in answers[5:])
    # The physician, from their own address, gets straight in: no lock on the account.
    assert attempt(db, user.email, PHYSICIAN, right=True, now=now + timedelta(seconds=200)) is True


def test_failures_spread_over_many_addresses_cost_the_physician_at_most_a_short_wait(
    db: Session,
) -> None:
    user = make_user(db)
    now = utcnow()
    for i in range(100):  # a botnet: one failure from each of 100 addresses
        attempt(db, user.email, f"10.0.{i // 250}.{i % 250}", right=False, now=now)
    wait = attempt(db, user.email, PHYSICIAN, right=True, now=now)
    assert wait is not True and wait <= get_settings().login_account_max_delay_seconds
    later = now + timedelta(seconds=int(wait) + 1)
    assert attempt(db, user.email, PHYSICIAN, right=True, now=later) is True


def test_backoff_doubles_and_refused_attempts_are_not_counted(db: Session) -> None:
    user = make_user(db)
    now = utcnow()
    for _ in range(5):
        assert attempt(db, user.email, STRANGER, right=False, now=now) is False
    assert attempt(db, user.email, STRANGER, right=False, now=now) is False  # 6th: wait 1 s
    assert attempt(db, user.email, STRANGER, right=False, now=now) == 1  # refused, not counted
    assert attempt(db, user.email, STRANGER, right=False, now=now) == 1
    pair = db.scalar(select(LoginThrottle).where(LoginThrottle.key.like("pair:%")))
    assert pair is not None and pair.failures == 6
    now += timedelta(seconds=1)
    assert attempt(db, user.email, STRANGER, right=False, now=now) is False  # 7th: wait 2 s
    assert attempt(db, user.email, STRANGER, right=False, now=now) == 2
    # Forgotten after the window: the stranger's counters do not accumulate for ever.
    now += timedelta(minutes=get_settings().login_window_minutes + 1)
    assert attempt(db, user.email, STRANGER, right=False, now=now) is False
    db.expire_all()
    assert db.get(LoginThrottle, pair.key).failures == 1


def test_one_address_guessing_many_accounts_is_slowed(db: Session) -> None:
    now = utcnow()
    free = get_settings().login_address_free_failures
    answers = [attempt(db, f"guess{i}@example.org", STRANGER, right=False, now=now)
               for i in range(free + 3)]
    assert answers[:free + 1] == [False] * (free + 1) and answers[free + 1] >= 1
    # ...but a physician behind another address is untouched.
    user = make_user(db)
    assert attempt(db, user.email, PHYSICIAN, right=True, now=now) is True


def test_unknown_inactive_and_wrong_get_the_same_answers_and_the_same_throttle(db: Session) -> None:
    known = make_user(db)
    inactive = make_user(db)
    set_active(db, user_id=inactive.id, active=False)
    now = utcnow()
    results = {}
    for email in (known.email, inactive.email, "nobody@example.org"):
        results[email] = [attempt(db, email, f"192.0.2.{len(results)}", right=False, now=now)
                          for _ in range(8)]
    assert len({tuple(r) for r in results.values()}) == 1, results
    assert results[known.email][:6] == [False] * 6 and results[known.email][6] == 1


def test_every_failure_is_audited_with_the_address_and_no_email(db: Session) -> None:
    user = make_user(db)
    now = utcnow()
    attempt(db, "nobody@example.org", STRANGER, right=False, now=now)
    attempt(db, user.email, STRANGER, right=False, now=now)
    for _ in range(6):
        attempt(db, user.email, PHYSICIAN, right=False, now=now)
    attempt(db, user.email, PHYSICIAN, right=False, now=now)  # throttled
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")
                             .order_by(AuditEvent.id)))
    assert [e.details["reason"] for e in events] == (
        ["unknown_account", "wrong_password"] + ["wrong_password"] * 6 + ["throttled"])
    assert [e.details["address"] for e in events[:2]] == [STRANGER, STRANGER]
    assert events[0].actor_id is None and events[1].actor_id == user.id
    assert all("nobody" not in str(e.details) and user.email not in str(e.details) for e in events)


def test_set_password_clears_the_throttle(db: Session) -> None:
    user = make_user(db)
    now = utcnow()
    for _ in range(7):
        attempt(db, user.email, STRANGER, right=False, now=now)
    assert attempt(db, user.email, STRANGER, right=True, now=now) > 0
    set_password(db, email=user.email, password=PASSWORD)
    assert attempt(db, user.email, STRANGER, right=True, now=now) is True


def test_the_throttle_holds_across_processes(committed_engine: Engine, pg_url: str) -> None:
    """Another process's failures (another worker) throttle this one: the state is in PostgreSQL."""
    with Session(committed_engine) as s, s.begin():
        email = make_user(s).email
    code = (
        "from app.services.auth import begin_login, finish_login\n"
        "from app.db import get_sessionmaker\n"
        "from app.models import utcnow\n"
        "now = utcnow()\n"
        "for _ in range(6):\n"
        "    with get_sessionmaker()() as s, s.begin():\n"
        f"        a = begin_login(s, email={email!r}, address={STRANGER!r}, now=now)\n"
        f"        finish_login(s, attempt=a, email={email!r}, password='x', address={STRANGER!r},"
        " verified=False, now=now)\n"
        "print(now.isoformat())\n"
    )
    env = {"PREFLOOP_DATABASE_URL": pg_url, "PREFLOOP_ENV": "test", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": "."},
                          check=True, timeout=120, capture_output=True, text=True)
    now = datetime.fromisoformat(done.stdout.strip())
    with Session(committed_engine) as s, s.begin():
        assert begin_login(s, email=email, address=STRANGER, now=now).retry_after == 1


def test_http_failures_get_401_then_429_with_retry_after_and_one_message(
    client: TestClient, db: Session
) -> None:
    user = make_user(db)
    for email in ("nobody@example.org", user.email):
        failed = login(client, email, "wrong password!")
        assert failed.status_code == 401 and WRONG_CREDENTIALS in failed.text
    statuses = [login(client, user.email, "wrong password!").status_code for _ in range(4)]
    while statuses[-1] != 429 and len(statuses) < 12:
        statuses.append(login(client, user.email, "wrong password!").status_code)
    assert statuses[:5] == [401] * 4 + [401] and statuses[-1] == 429  # 5 free, then backoff
    for row in db.scalars(select(LoginThrottle)):  # hold the backoff while the box is slow
        row.blocked_until = utcnow() + timedelta(seconds=30)
    db.flush()
    throttled = login(client, user.email)  # even the right password waits out the backoff
    assert throttled.status_code == 429 and 29 <= int(throttled.headers["Retry-After"]) <= 30
    assert "Too many failed logins" in throttled.text and "locked" not in throttled.text
    for _ in range(6):
        login(client, "nobody@example.org", "wrong password!")
    unknown = login(client, "nobody@example.org", "wrong password!")
    assert unknown.status_code == 429  # the same for an email that has no account


def test_argon2_uses_owasp_parameters_and_old_hashes_are_upgraded(db: Session) -> None:
    from argon2 import PasswordHasher

    user = make_user(db)
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    user.password_hash = PasswordHasher().hash(PASSWORD)  # argon2-cffi's defaults, as before
    db.flush()
    assert attempt(db, user.email, PHYSICIAN, right=True, now=utcnow()) is True
    assert db.get(User, user.id).password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_argon2_runs_off_the_event_loop_at_most_cpu_count_at_once(monkeypatch) -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow_verify(password_hash: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(auth, "verify_password", slow_verify)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(auth.verify_password_bounded("h", "p")
                               for _ in range(auth.ARGON2_SLOTS * 3)))
        tick.cancel()
        return ticks

    ticks = asyncio.run(main())
    assert peak == auth.ARGON2_SLOTS
    assert ticks >= 10  # the loop kept serving while passwords were checked

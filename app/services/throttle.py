"""Login throttling: exponential backoff per key, never a lock that a stranger can hold.

Three keys count failures for each attempt:
- the address (any account): slows one source guessing many accounts and burning CPU;
- the account from that address: slows one source guessing one account;
- the account from anywhere: slows a guess spread over many addresses, but its wait is capped
  low (`login_account_max_delay_seconds`), because strangers can push it: the most a stranger can
  cost a physician is that short wait, never a lockout.
A key refuses attempts (429) until its `blocked_until`; refused attempts run no argon2 and are not
counted, so a wait ends on its own. The keys are the same whether or not the account exists.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.config import get_settings
from app.models import LoginThrottle


@dataclass(frozen=True)
class Rule:
    """Failures allowed before backoff, and the longest wait, for one kind of key."""

    free: int
    max_delay: int


def account_digest(email: str) -> str:
    """A stand-in for the email in keys (never the email itself)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def keys_for(*, email: str, address: str) -> dict[str, Rule]:
    """The throttle keys an attempt counts against, with their rules."""
    s = get_settings()
    account = account_digest(email)
    address = address[:64]
    return {
        f"addr:{address}": Rule(s.login_address_free_failures, s.login_max_delay_seconds),
        f"pair:{account}:{address}": Rule(s.login_free_failures, s.login_max_delay_seconds),
        f"acct:{account}": Rule(s.login_account_free_failures, s.login_account_max_delay_seconds),
    }


def retry_after(session: Session, *, keys: list[str], now: datetime) -> int:
    """Seconds until every key allows an attempt (0: go ahead)."""
    blocked = session.scalars(
        select(LoginThrottle.blocked_until).where(
            LoginThrottle.key.in_(keys), LoginThrottle.blocked_until > now
        )
    )
    return max((math.ceil((b - now).total_seconds()) for b in blocked if b is not None), default=0)


def _create_missing(session: Session, rows: list[dict[str, object]]) -> None:
    # INSERT ... ON CONFLICT DO NOTHING, in each dialect's own spelling.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sqlite_insert(LoginThrottle).values(rows).on_conflict_do_nothing())
    else:
        session.execute(pg_insert(LoginThrottle).values(rows).on_conflict_do_nothing())


def record_failure(session: Session, *, rules: dict[str, Rule], now: datetime) -> None:
    """Count a failure on each key; past its free failures a key waits 1, 2, 4 ... seconds."""
    window = timedelta(minutes=get_settings().login_window_minutes)
    session.execute(delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - window))
    # Every worker process counts in the same rows: create them if missing, then lock and add.
    _create_missing(session, [{"key": k, "failures": 0, "last_failure_at": now} for k in rules])
    locked = session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(list(rules)))
        .order_by(
            LoginThrottle.key
        )  # one lock order for all, so concurrent failures never deadlock
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for row in locked:
        rule = rules[row.key]
        row.failures += 1
        row.last_failure_at = now
        over = row.failures - rule.free
        if over > 0:
            row.blocked_until = now + timedelta(seconds=min(rule.max_delay, 2 ** min(over - 1, 20)))
    session.flush()


def clear(session: Session, *, email: str, address: str | None = None) -> None:
    """Forget an account's failures (a successful login, or an admin setting a new password)."""
    account = account_digest(email)
    own = LoginThrottle.key == f"acct:{account}"
    pairs: ColumnElement[bool]
    if address is None:  # every address: the account's own key and all its pairs
        pairs = LoginThrottle.key.like(f"pair:{account}:%")
    else:
        pairs = LoginThrottle.key == f"pair:{account}:{address[:64]}"
    session.execute(delete(LoginThrottle).where(own | pairs))

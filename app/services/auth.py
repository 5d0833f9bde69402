"""Logins: throttle, check the password off the event loop, audit every failure with its address.

A login is two short transactions around the argon2 check, so no database connection is held
while a password is hashed or while an attempt waits for a free argon2 slot:
`begin_login` (throttle check, load the hash) -> `verify_password_bounded` -> `finish_login`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.errors import ValidationFailed
from app.models import User, utcnow
from app.security import hash_password, password_needs_rehash, verify_password
from app.services import throttle
from app.services.audit import record_event
from app.services.users import normalise_email

T = TypeVar("T")
# One message for every failed login: wrong password, unknown email, inactive account.
WRONG_CREDENTIALS = "Wrong email or password."
# Verified against when the email is unknown, so that a miss costs as long as a hit.
_DUMMY_HASH = hash_password("not-a-real-password-used-for-timing")
# argon2 is memory-hard CPU work: more at once than there are cores only queues inside the OS.
ARGON2_SLOTS = max(1, os.cpu_count() or 1)
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class LoginAttempt:
    """What the first transaction learnt: a wait, or the hash to verify against."""

    retry_after: int
    user_id: int | None = None
    password_hash: str = _DUMMY_HASH


@dataclass(frozen=True)
class LoginOutcome:
    """The user on success; otherwise the message to show and, when throttled, the wait."""

    user: User | None
    message: str = ""
    retry_after: int = 0


def throttled_message(seconds: int) -> str:
    """The one message for every throttled attempt (it says nothing of the account)."""
    return f"Too many failed logins. Try again in {seconds} second{'s' if seconds != 1 else ''}."


def _normal(email: str) -> str | None:
    try:
        return normalise_email(email)
    except ValidationFailed:
        return None


def _audit_failure(
    session: Session, *, user_id: int | None, email: str, address: str, reason: str
) -> None:
    # The attempted email is kept only as a digest: people type passwords into the email field.
    details = {
        "address": address,
        "reason": reason,
        "email_sha256": hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16],
    }
    record_event(
        session,
        action="login.failed",
        actor_id=user_id,
        target_type="user",
        target_id=user_id,
        details=details,
    )


def begin_login(
    session: Session, *, email: str, address: str, now: datetime | None = None
) -> LoginAttempt:
    """Refuse a throttled attempt (audited), else the user's id and hash (a dummy if unknown)."""
    now = now or utcnow()
    wait = throttle.retry_after(
        session, keys=list(throttle.keys_for(email=email, address=address)), now=now
    )
    if wait:
        _audit_failure(session, user_id=None, email=email, address=address, reason="throttled")
        return LoginAttempt(retry_after=wait)
    normal = _normal(email)
    user = None if normal is None else session.scalar(select(User).where(User.email == normal))
    if user is None or not user.active:
        return LoginAttempt(retry_after=0)
    return LoginAttempt(retry_after=0, user_id=user.id, password_hash=user.password_hash)


async def verify_password_bounded(password_hash: str, password: str) -> bool:
    """verify_password in a worker thread, at most ARGON2_SLOTS at a time per process."""
    loop = asyncio.get_running_loop()
    slots = _slots.setdefault(loop, asyncio.Semaphore(ARGON2_SLOTS))
    async with slots:
        return await run_in_threadpool(verify_password, password_hash, password)


def finish_login(
    session: Session,
    *,
    attempt: LoginAttempt,
    email: str,
    password: str,
    address: str,
    verified: bool,
    now: datetime | None = None,
) -> LoginOutcome:
    """Record the outcome: a failure counts on every throttle key; a success clears the account's."""
    now = now or utcnow()
    user = None if attempt.user_id is None else session.get(User, attempt.user_id)
    # The hash read before argon2 must still be the user's: a password changed meanwhile fails.
    if (
        verified
        and user is not None
        and user.active
        and user.password_hash == attempt.password_hash
    ):
        throttle.clear(session, email=email, address=address)
        if password_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)  # bump to today's parameters
        user.last_login_at = now
        session.flush()
        record_event(
            session,
            action="login.ok",
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details={"address": address},
        )
        return LoginOutcome(user)
    throttle.record_failure(session, rules=throttle.keys_for(email=email, address=address), now=now)
    reason = "unknown_account" if attempt.user_id is None else "wrong_password"
    _audit_failure(session, user_id=attempt.user_id, email=email, address=address, reason=reason)
    return LoginOutcome(None, WRONG_CREDENTIALS)


class TransactionRunner(Protocol):
    """Runs `work(session)` in its own short transaction off the event loop (db.run_in_transaction)."""

    def __call__(self, work: Callable[[Session], T]) -> Awaitable[T]: ...


async def authenticate(
    run: TransactionRunner, *, email: str, password: str, address: str
) -> LoginOutcome:
    """The whole login: throttle check, bounded argon2 off the event loop, outcome recorded."""
    attempt = await run(lambda session: begin_login(session, email=email, address=address))
    if attempt.retry_after:
        return LoginOutcome(None, throttled_message(attempt.retry_after), attempt.retry_after)
    verified = await verify_password_bounded(attempt.password_hash, password)
    return await run(
        lambda session: finish_login(
            session,
            attempt=attempt,
            email=email,
            password=password,
            address=address,
            verified=verified,
        )
    )

"""Logins: check a password, count failures, lock an account after too many."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import ValidationFailed
from app.models import User, utcnow
from app.security import hash_password, verify_password
from app.services.audit import record_event
from app.services.users import normalise_email

WRONG_CREDENTIALS = "Wrong email or password."
# Verified against when the email is unknown, so that a miss costs as long as a hit.
_DUMMY_HASH = hash_password("not-a-real-password-used-for-timing")


@dataclass(frozen=True)
class LoginOutcome:
    """The user on success; otherwise the message to show (nothing says whether the email exists)."""

    user: User | None
    message: str = ""


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() + 59) // 60)
    return (
        "This account is locked after too many failed logins. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an admin to reset it."
    )


def _find_user(session: Session, email: str) -> User | None:
    try:
        email = normalise_email(email)
    except ValidationFailed:
        return None
    return session.scalar(select(User).where(User.email == email))


def _record_failure(session: Session, user: User, now: datetime) -> LoginOutcome:
    settings = get_settings()
    user.failed_logins += 1
    if user.failed_logins >= settings.max_failed_logins:
        # Lock, and start counting afresh once the lock ends.
        user.failed_logins = 0
        user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
        session.flush()
        record_event(
            session, action="login.locked", actor_id=user.id, target_type="user", target_id=user.id
        )
        return LoginOutcome(None, _locked_message(user.locked_until, now))
    session.flush()
    record_event(
        session, action="login.failed", actor_id=user.id, target_type="user", target_id=user.id
    )
    return LoginOutcome(None, WRONG_CREDENTIALS)


def authenticate(
    session: Session, *, email: str, password: str, now: datetime | None = None
) -> LoginOutcome:
    """Check a login; failures are counted (not raised) so the caller's transaction keeps them."""
    now = now or utcnow()
    user = _find_user(session, email)
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        return LoginOutcome(None, WRONG_CREDENTIALS)
    if user.locked_until is not None and user.locked_until > now:
        return LoginOutcome(None, _locked_message(user.locked_until, now))
    if not verify_password(user.password_hash, password):
        return _record_failure(session, user, now)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.flush()
    record_event(
        session, action="login.ok", actor_id=user.id, target_type="user", target_id=user.id
    )
    return LoginOutcome(user)

"""Accounts: create users, set passwords, end sessions, deactivate."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import User
from app.security import MIN_PASSWORD_LENGTH, hash_password
from app.services import throttle
from app.services.audit import record_event

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """The canonical (trimmed, lowercased) email, or a ValidationFailed."""
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValidationFailed("not a valid email address", field="email")
    return email


def check_password_strength(password: str) -> None:
    """Reject passwords too short to resist guessing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )


def get_user_by_email(session: Session, *, email: str) -> User | None:
    """The user with this email, if any."""
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def get_existing_user(session: Session, *, email: str) -> User:
    """The user with this email, or NotFound."""
    user = get_user_by_email(session, email=email)
    if user is None:
        raise NotFound(f"no user with email {normalise_email(email)}", field="email")
    return user


def _new_pseudonym(session: Session) -> str:
    # A stable, meaningless handle for exports; retried on the (unlikely) collision.
    while True:
        pseudonym = "r-" + secrets.token_hex(4)
        if session.scalar(select(User.id).where(User.pseudonym == pseudonym)) is None:
            return pseudonym


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: str = "rater",
    display_name: str = "",
    specialty: str | None = None,
    actor_id: int | None = None,
) -> User:
    """Create an active user with an argon2-hashed password."""
    email = normalise_email(email)
    check_password_strength(password)
    if role not in ("rater", "admin"):
        raise ValidationFailed("role must be rater or admin", field="role")
    if get_user_by_email(session, email=email) is not None:
        raise Conflict(f"a user with email {email} already exists", field="email")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role,
        display_name=display_name or email.split("@")[0],
        specialty=specialty,
        pseudonym=_new_pseudonym(session),
    )
    session.add(user)
    session.flush()
    record_event(
        session,
        action="user.create",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
        details={"role": role},
    )
    return user


def set_password(
    session: Session, *, email: str, password: str, actor_id: int | None = None
) -> User:
    """Replace a user's password, end their sessions and clear any login throttle on the account."""
    check_password_strength(password)
    user = get_existing_user(session, email=email)
    user.password_hash = hash_password(password)
    user.session_version += 1
    throttle.clear(session, email=user.email)
    session.flush()
    record_event(
        session,
        action="user.set_password",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
    )
    return user


def _by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}", field="user_id")
    return user


def end_sessions(session: Session, *, user_id: int, actor_id: int | None = None) -> User:
    """End every session of a user at once (their cookies stop working on the next request)."""
    user = _by_id(session, user_id)
    user.session_version += 1
    session.flush()
    record_event(
        session,
        action="user.end_sessions",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
    )
    return user


def set_active(
    session: Session, *, user_id: int, active: bool, actor_id: int | None = None
) -> User:
    """Activate or deactivate an account; deactivation also ends its sessions."""
    user = _by_id(session, user_id)
    user.active = active
    if not active:
        user.session_version += 1
    session.flush()
    record_event(
        session,
        action="user.activate" if active else "user.deactivate",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
    )
    return user

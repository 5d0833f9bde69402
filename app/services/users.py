"""Accounts: create users, set passwords."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import User
from app.security import MIN_PASSWORD_LENGTH, hash_password
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
    """Replace a user's password and clear any lockout."""
    check_password_strength(password)
    user = get_user_by_email(session, email=email)
    if user is None:
        raise NotFound(f"no user with email {normalise_email(email)}", field="email")
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    record_event(
        session,
        action="user.set_password",
        actor_id=actor_id,
        target_type="user",
        target_id=user.id,
    )
    return user


EXTERNAL_DOMAIN = "external.invalid"  # RFC 2606: no mail is ever delivered here
EXTERNAL_PSEUDONYM_PREFIX = "ext-"
# Not an argon2 hash, so no password ever matches it: the account cannot log in.
NO_LOGIN_HASH = "!external-no-login"


def is_external(user: User) -> bool:
    """True for the accounts that hold an imported data set's human judgments."""
    return user.pseudonym.startswith(EXTERNAL_PSEUDONYM_PREFIX)


def external_rater(session: Session, *, source: str, display_name: str) -> User:
    """The (inactive, no-login) account whose judgments are a public data set's; made once."""
    email = f"{source}@{EXTERNAL_DOMAIN}"
    user = session.scalar(select(User).where(User.email == email))
    if user is not None:
        return user
    user = User(
        email=email,
        password_hash=NO_LOGIN_HASH,
        role="rater",
        display_name=display_name,
        pseudonym=f"{EXTERNAL_PSEUDONYM_PREFIX}{source}"[:32],
        active=False,
    )
    session.add(user)
    session.flush()
    record_event(session, action="user.create_external", target_type="user", target_id=user.id,
                 details={"source": source})  # fmt: skip
    return user

"""Accounts: create users, set passwords, end sessions, deactivate."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Invite, User, utcnow
from app.security import MIN_PASSWORD_LENGTH, hash_password, hash_token
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


INVITE_DAYS = 7


def _new_invite(session: Session, user: User, actor_id: int | None) -> str:
    """A fresh one-time link token for `user` (earlier unused ones are voided)."""
    now = utcnow()
    for old in session.scalars(select(Invite).where(Invite.user_id == user.id,
                                                    Invite.used_at.is_(None))):  # fmt: skip
        old.used_at = now
    token = secrets.token_urlsafe(32)
    session.add(Invite(user_id=user.id, token_hash=hash_token(token), created_by_id=actor_id,
                       expires_at=now + timedelta(days=INVITE_DAYS)))  # fmt: skip
    session.flush()
    return token


def invite_user(
    session: Session,
    *,
    email: str,
    display_name: str = "",
    specialty: str | None = None,
    role: str = "rater",
    actor_id: int | None = None,
) -> tuple[User, str]:
    """Create an account with no usable password and a one-time link token to set one."""
    user = create_user(session, email=email, password=secrets.token_urlsafe(24), role=role,
                       display_name=display_name, specialty=specialty or None,
                       actor_id=actor_id)  # fmt: skip
    user.password_hash = NO_LOGIN_HASH  # nobody knows a password until the link is used
    token = _new_invite(session, user, actor_id)
    record_event(session, action="user.invite", actor_id=actor_id, target_type="user",
                 target_id=user.id)  # fmt: skip
    return user, token


def reset_link(session: Session, *, user_id: int, actor_id: int | None = None) -> tuple[User, str]:
    """A new one-time link for an existing user to set a new password; the old one stops working."""
    user = get_user(session, user_id=user_id)
    user.password_hash = NO_LOGIN_HASH
    user.session_version += 1  # a reset ends the sessions of whoever held the old password
    token = _new_invite(session, user, actor_id)
    record_event(session, action="user.reset_password", actor_id=actor_id, target_type="user",
                 target_id=user.id)  # fmt: skip
    return user, token


def invite_for(session: Session, *, token: str) -> Invite:
    """The live invite behind a link token, or NotFound (used, expired or never issued)."""
    invite = session.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
    if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
        raise NotFound("this link has been used or has expired; ask an admin for a new one")
    return invite


def accept_invite(session: Session, *, token: str, password: str) -> User:
    """Set the password through a one-time link; the link then stops working."""
    invite = invite_for(session, token=token)
    check_password_strength(password)
    user = session.get_one(User, invite.user_id)
    user.password_hash = hash_password(password)
    user.session_version += 1  # a new password ends any session from before it
    throttle.clear(session, email=user.email)
    invite.used_at = utcnow()
    session.flush()
    record_event(session, action="user.accept_invite", actor_id=user.id, target_type="user",
                 target_id=user.id)  # fmt: skip
    return user


def get_user(session: Session, *, user_id: int) -> User:
    """The user with this id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}", field="user_id")
    return user


def end_sessions(session: Session, *, user_id: int, actor_id: int | None = None) -> User:
    """End every session of a user at once (their cookies stop working on the next request)."""
    user = get_user(session, user_id=user_id)
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


def update_user(
    session: Session,
    *,
    user_id: int,
    display_name: str,
    specialty: str | None,
    actor_id: int | None = None,
) -> User:
    """Set a user's name and specialty."""
    user = get_user(session, user_id=user_id)
    name = display_name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("a name of 1 to 200 characters", field="display_name")
    if specialty is not None and len(specialty.strip()) > 100:
        raise ValidationFailed("a specialty of at most 100 characters", field="specialty")
    user.display_name = name
    user.specialty = (specialty or "").strip() or None
    session.flush()
    record_event(session, action="user.update", actor_id=actor_id, target_type="user",
                 target_id=user.id)  # fmt: skip
    return user


def set_active(
    session: Session, *, user_id: int, active: bool, actor_id: int | None = None
) -> User:
    """Deactivate (their judgments stay, they can no longer log in) or reactivate a user."""
    user = get_user(session, user_id=user_id)
    if is_external(user):
        raise ValidationFailed("an imported data set's account never logs in", field="user_id")
    if user.id == actor_id and not active:
        raise ValidationFailed("you cannot deactivate yourself", field="user_id")
    user.active = active
    if not active:
        user.session_version += 1  # deactivation ends every session at once
    session.flush()
    record_event(session, action="user.activate" if active else "user.deactivate",
                 actor_id=actor_id, target_type="user", target_id=user.id)  # fmt: skip
    return user


def clear_lockout(session: Session, *, user_id: int, actor_id: int | None = None) -> User:
    """Let a user held back by failed logins try again now (clears the login backoff)."""
    user = get_user(session, user_id=user_id)
    throttle.clear(session, email=user.email)
    session.flush()
    record_event(session, action="user.clear_lockout", actor_id=actor_id, target_type="user",
                 target_id=user.id)  # fmt: skip
    return user

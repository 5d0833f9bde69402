"""API tokens: create (the plaintext is returned once), list, revoke, and authenticate a request."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from app.models import ApiToken, User, utcnow
from app.models.users import TOKEN_SCOPES
from app.security import TOKEN_PREFIX, hash_token, new_api_token
from app.services.audit import record_event

# Recording every use would write a row per request; once a minute is precise enough to audit.
LAST_USED_RESOLUTION = timedelta(minutes=1)
PREFIX_SHOWN = len(TOKEN_PREFIX) + 6


def create_token(
    session: Session,
    *,
    user: User,
    name: str,
    scope: str = "read",
    expires_in_days: int | None = None,
    actor_id: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token for an admin `user`; returns the row and the plaintext, which is never stored."""
    name = name.strip()
    if not name:
        raise ValidationFailed("a token needs a name", field="name")
    if scope not in TOKEN_SCOPES:
        raise ValidationFailed("scope must be read or write", field="scope")
    # Tokens read every rater's judgments, which only admins may see.
    if not user.is_admin or not user.active:
        raise ValidationFailed("tokens are issued to active admins only", field="user")
    if expires_in_days is not None and expires_in_days < 1:
        raise ValidationFailed("expiry must be at least one day", field="expires_in_days")
    plaintext = new_api_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:PREFIX_SHOWN],
        scope=scope,
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(token)
    session.flush()
    record_event(
        session,
        action="token.create",
        actor_id=actor_id if actor_id is not None else user.id,
        target_type="api_token",
        target_id=token.id,
        details={"scope": scope, "prefix": token.prefix},
    )
    return token, plaintext


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    """Every token (never the plaintext), newest first."""
    stmt = select(ApiToken).order_by(ApiToken.id.desc())
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_token(session: Session, *, token_id: int, actor_id: int | None = None) -> ApiToken:
    """Revoke a token at once; revoking twice keeps the first time."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", field="token_id")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        record_event(
            session,
            action="token.revoke",
            actor_id=actor_id,
            target_type="api_token",
            target_id=token.id,
        )
    return token


def _touch(session: Session, token: ApiToken) -> None:
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # SKIP LOCKED: a long export holds its request open; a second request with the same token
    # must not wait for it just to record a time the first is recording already.
    locked = session.scalar(
        select(ApiToken.id).where(ApiToken.id == token.id).with_for_update(skip_locked=True)
    )
    if locked is not None:
        token.last_used_at = now
        session.flush()


def authenticate(session: Session, *, plaintext: str | None, scope: str) -> ApiToken:
    """The live token behind a bearer value, with its use recorded; 401 unknown, 403 under-scoped."""
    if not plaintext or not plaintext.startswith(TOKEN_PREFIX):
        raise Unauthorized("send a valid API token: Authorization: Bearer pfl_...")
    token = session.scalar(
        select(ApiToken).join(User).where(ApiToken.token_hash == hash_token(plaintext))
    )
    if token is None:
        raise Unauthorized("unknown API token")
    if token.revoked_at is not None:
        raise Unauthorized("this API token was revoked")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthorized("this API token has expired")
    if not token.user.active or not token.user.is_admin:
        raise Unauthorized("the owner of this API token may no longer use the API")
    _touch(session, token)
    if scope == "write" and token.scope != "write":
        raise Forbidden("this API token is read-only; a write token is needed", field="scope")
    return token

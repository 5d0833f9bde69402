"""Web sessions: a signed, HttpOnly, SameSite=Lax cookie; CSRF tokens; the role dependencies.

The cookie holds only the user id, a CSRF token and the user's session version. The version is
compared with the users row in the same query that loads the user, so bumping it (logout, password
change, deactivation, an admin ending the sessions) ends every session of that user at once,
server-side, whatever copies of the cookie exist. It is signed with the secret key and expires
after `session_max_age_hours`. It is `Secure` whenever the request came over HTTPS (uvicorn honours
X-Forwarded-Proto behind a proxy) and always in production.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, cast

from fastapi import Depends, Path, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import SessionDep, loaded
from app.errors import Forbidden, Unauthorized
from app.models import User
from app.schemas.common import MAX_ID

COOKIE = "prefloop_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
RATER_ROLES = ("rater", "admin")  # admins are physicians too and may rate


@dataclass(frozen=True)
class WebSession:
    """What the cookie says: maybe a user, always a CSRF token."""

    user_id: int | None
    csrf: str
    version: int = 0
    fresh: bool = False  # True when no valid cookie came in and this one must be set


def _serializer(secret_key: str | None = None) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key or get_settings().secret_key, salt="prefloop.session")


def _max_age() -> int:
    return get_settings().session_max_age_hours * 3600


@lru_cache(maxsize=4096)
def _signed_session(raw: str, secret_key: str) -> tuple[WebSession, int]:
    """The session a cookie holds and when it was signed; BadSignature (or a payload error)
    when it was not signed with this key. Cached, as the cookie comes back unchanged with
    every request of a login: checking its signature each time was ~1.5% of a judgment's CPU.
    Only cookies that passed the check are kept (an exception is not cached)."""
    data, signed_at = _serializer(secret_key).loads(raw, return_timestamp=True)
    web = WebSession(data.get("uid"), str(data["csrf"]), int(data.get("sv", -1)))
    return web, int(signed_at.timestamp())


def read_session(request: Request) -> WebSession:
    """The request's session, or a new anonymous one with a fresh CSRF token."""
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            web, signed_at = _signed_session(raw, get_settings().secret_key)
        except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
            return anonymous_session()  # tampered with: start again as anonymous
        # Expiry is checked on every request, as itsdangerous's max_age does.
        if 0 <= int(time.time()) - signed_at <= _max_age():
            return web
    return anonymous_session()


def write_session(request: Request, response: Response, web: WebSession) -> None:
    """Set the signed cookie on `response`."""
    value = _serializer().dumps({"uid": web.user_id, "csrf": web.csrf, "sv": web.version})
    secure = request.url.scheme == "https" or get_settings().env == "production"
    response.set_cookie(
        COOKIE, value, max_age=_max_age(), httponly=True, samesite="lax", secure=secure, path="/"
    )


def anonymous_session() -> WebSession:
    """A session with no user and a new CSRF token."""
    return WebSession(None, secrets.token_urlsafe(32), fresh=True)


def logged_in_session(user: User) -> WebSession:
    """A new session for `user`, with a new CSRF token (no token survives a login)."""
    return WebSession(user.id, secrets.token_urlsafe(32), user.session_version)


def request_session(request: Request) -> WebSession:
    """The request's session, read from the cookie once (checking its signature is not free)."""
    web: WebSession | None = getattr(request.state, "web_session", None)
    if web is None:
        web = request.state.web_session = read_session(request)
    return web


def csrf_token(request: Request) -> str:
    """The CSRF token to embed in this request's forms and htmx headers."""
    return request_session(request).csrf


async def verify_csrf(request: Request) -> None:
    """Refuse a state-changing request whose token does not match the cookie's."""
    web = request_session(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # cached by Starlette: the route reads it again for free
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if web.fresh or not sent or not secrets.compare_digest(sent, web.csrf):
        raise Forbidden("This form has expired. Reload the page and try again.", code="csrf")


_USERS = cast(Table, User.__table__)
_USER = select(*_USERS.c).where(_USERS.c.id == bindparam("user_id"))


def user_of(session: Session, web: WebSession) -> User | None:
    """The logged-in, active user whose sessions were not ended since this cookie, or None."""
    if web.user_id is None:
        return None
    # The one query (the version comes with the row), built once: Session.get builds its own;
    # plain columns made into the User without the ORM's loading (every request pays for it).
    return _still_holding(loaded(session, _USER, {"user_id": web.user_id}, User), web)


def _still_holding(user: User | None, web: WebSession) -> User | None:
    """`user` if the cookie's session of them still holds (active, not ended since), else None."""
    if user is None or not user.active or user.session_version != web.version:
        return None
    return user


def current_user(request: Request, session: SessionDep) -> User | None:
    """The request's user (see user_of), or None."""
    return user_of(session, request_session(request))


def logged_in(user: User | None) -> User:
    """The user, or Unauthorized (pages redirect to the login)."""
    if user is None:
        raise Unauthorized("Please log in.")
    return user


def may_rate(user: User) -> User:
    """The user, if they may rate."""
    if user.role not in RATER_ROLES:
        raise Forbidden("Your account may not rate.")
    return user


CurrentUser = Annotated[User | None, Depends(current_user)]
# The checks below only look at the loaded user: async, so FastAPI runs them on the event loop
# instead of sending each to a worker thread (a thread hop per dependency per request).


async def require_user(user: CurrentUser) -> User:
    """The logged-in user, or Unauthorized."""
    return logged_in(user)


async def require_rater(user: Annotated[User, Depends(require_user)]) -> User:
    """A user who may rate."""
    return may_rate(user)


async def cookie_session(request: Request) -> WebSession:
    """The request's session as its cookie says (no database): for rater_of."""
    return request_session(request)


def rater_of(session: Session, web: WebSession) -> User:
    """RaterDep's user and checks, for a route that loads the rater on its own worker thread
    together with the rest of its work: one thread hop per request instead of two."""
    return may_rate(logged_in(user_of(session, web)))


def checked_rater(user: User | None, web: WebSession) -> User:
    """rater_of's checks on the cookie's user loaded with other rows (the rating turn)."""
    return may_rate(logged_in(_still_holding(user, web)))


def require_admin(user: Annotated[User, Depends(require_user)]) -> User:
    """An admin."""
    if not user.is_admin:
        raise Forbidden("This page is for admins.")
    return user


RaterDep = Annotated[User, Depends(require_rater)]
AdminDep = Annotated[User, Depends(require_admin)]
CsrfDep = Depends(verify_csrf)
CookieDep = Annotated[WebSession, Depends(cookie_session)]

# Ids in page paths: bounded like the API's, so 2**70 is a 422, not an overflow in the driver.
PageId = Annotated[int, Path(ge=1, le=MAX_ID)]

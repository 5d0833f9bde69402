"""The bearer-token dependency: who is calling, with which scope. Session cookies are ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.db import SessionDep
from app.models import ApiToken
from app.schemas.common import ErrorOut
from app.services.tokens import authenticate

_bearer = HTTPBearer(
    auto_error=False,
    description="An API token an admin created: `Authorization: Bearer pfl_...`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _requires(scope: str) -> Callable[..., ApiToken]:
    def dependency(session: SessionDep, credentials: Credentials) -> ApiToken:
        plaintext = credentials.credentials if credentials is not None else None
        return authenticate(session, plaintext=plaintext, scope=scope)

    dependency.__doc__ = f"The calling token, which must allow {scope}."
    return dependency


ReadToken = Annotated[ApiToken, Depends(_requires("read"))]
WriteToken = Annotated[ApiToken, Depends(_requires("write"))]

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A malformed cursor or request."},
    401: {"model": ErrorOut, "description": "No token, or an unknown, expired or revoked one."},
    403: {"model": ErrorOut, "description": "A read-only token on a write route."},
    404: {"model": ErrorOut, "description": "No such thing."},
    422: {"model": ErrorOut, "description": "A parameter or body field is invalid or unknown."},
}

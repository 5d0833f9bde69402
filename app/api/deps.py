"""The bearer-token dependency: who is calling, with which scope. Session cookies are ignored."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.db import SessionDep, run_in_transaction
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


def _bearer_value(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class WriteRoute(APIRoute):
    """A write route that checks its bearer token before it reads the body.

    FastAPI reads and parses a body before it resolves dependencies, so without this an anonymous
    caller's 20 MB of broken JSON is parsed (and answered 422) before anyone asks who it is.
    The route's WriteToken dependency checks again; the cost is one indexed lookup per write.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, behind the token check."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            plaintext = _bearer_value(request)
            await run_in_transaction(
                request.app,
                lambda session: authenticate(session, plaintext=plaintext, scope="write"),
            )
            return await handler(request)

        return checked


ReadToken = Annotated[ApiToken, Depends(_requires("read"))]
WriteToken = Annotated[ApiToken, Depends(_requires("write"))]

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A malformed cursor or request."},
    401: {"model": ErrorOut, "description": "No token, or an unknown, expired or revoked one."},
    403: {"model": ErrorOut, "description": "A read-only token on a write route."},
    404: {"model": ErrorOut, "description": "No such thing."},
    422: {"model": ErrorOut, "description": "A parameter or body field is invalid or unknown."},
}

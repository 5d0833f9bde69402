"""The role matrix's callers: every route of the app, a world of rows, one request per principal.

test_role_matrix checks each caller's status against its rules; test_hardening reuses the callers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from app.models import User
from app.schemas.common import MAX_ID
from app.web.auth import COOKIE, _serializer


@dataclass(frozen=True)
class Endpoint:
    """One method of one route."""

    method: str
    path: str


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app serves, from its route table; a mount counts as one GET."""
    found = []
    for context in iter_route_contexts(app.routes):
        methods = getattr(context.original_route, "methods", None) or {"GET"}
        found += [Endpoint(m, context.path) for m in sorted(methods) if m != "HEAD"]
    return found


@dataclass
class World:
    """The rows and credentials the matrix runs against."""

    params: dict[str, int | str]
    ids: dict[str, int]
    users: dict[str, User | None]
    csrf: dict[str, str]
    tokens: dict[str, str]
    assignment_id: int


def cookie(world: World, principal: str) -> str:
    """The principal's session cookie, signed as the app signs it (logout bumps the version)."""
    user = world.users[principal]
    data = {"uid": user.id if user else None, "csrf": world.csrf[principal],
            "sv": user.session_version if user else 0}
    return _serializer().dumps(data)


def fill(path: str, world: World, *, value: int | None = None) -> str:
    """`path` with its parameters filled from the world (or all set to `value`)."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part.startswith("{"):
            name = part.strip("{}")
            if value is not None:
                parts[i] = str(value)
            elif name == "item_id":
                parts[i] = str(world.ids.get(parts[i - 1], MAX_ID))  # model versions: none: 404
            else:
                assert name in world.params, f"add {name!r} to the world's params for {path}"
                parts[i] = str(world.params[name])
    return "/".join(parts)


def body_for(endpoint: Endpoint, world: World, principal: str) -> dict[str, Any]:
    """The form (with the principal's CSRF token) or the JSON body a POST sends."""
    if endpoint.path.startswith("/api/"):
        if endpoint.path.endswith("/rounds"):
            return {"json": {"campaign_id": world.ids["campaigns"], "method": "rloo"}}
        return {"json": {"records": [{"prompt": "p?", "responses": [{"text": "a"}, {"text": "b"}]}]}}
    form = {"csrf_token": world.csrf[principal], "assignment_id": str(world.assignment_id),
            "skip_reason": "other", "idempotency_key": secrets.token_urlsafe(18), "scale": "0",
            "email": "nobody@example.org", "password": "wrong password!"}
    return {"data": form}


def call(client: TestClient, endpoint: Endpoint, world: World, principal: str,
         path: str | None = None) -> Any:
    """One request as `principal`: its cookie, its token, and a body for a POST."""
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie(world, principal))
    headers = {"Accept": "text/html"} if not endpoint.path.startswith("/api/") else {}
    if principal in world.tokens:
        headers["Authorization"] = f"Bearer {world.tokens[principal]}"
    url = path or fill(endpoint.path, world)
    if endpoint.path == "/static":
        url = "/static/css/app.css"
    body = body_for(endpoint, world, principal) if endpoint.method == "POST" else {}
    return client.request(endpoint.method, url, headers=headers, follow_redirects=False, **body)

"""Every route of the app x every kind of caller -> the expected status, from the app's own routes.

The routes are read from the application (not listed here), so a route added later is checked too.
Who may use a route is decided by RULES: an exact path, else the longest matching path prefix.
A route no rule covers fails `test_every_route_has_a_rule`. Admin pages (/admin...) and round pages
(/admin/rounds...) are covered by the "/admin" prefix already; a new top-level prefix, or an
exception inside a prefix (say, an admin page that raters may see), is one line in RULES.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from app.schemas.common import MAX_ID
from app.services.assignment import next_assignment, skip_assignment
from app.services.rounds import queue_round
from app.services.schedules import create_schedule
from app.web.auth import COOKIE, _serializer
from tests.factories import make_campaign, make_comparisons, make_judgment, make_token, make_user

PRINCIPALS = ("anonymous", "rater", "other_rater", "admin", "read_token", "write_token")

# Who may call a route. public: anyone; rater: a logged-in rater or admin (a page);
# owner: that, and only on the caller's own assignment or judgment (others get 404);
# admin: a logged-in admin (a page); token: /api/v1 (GET needs a read token, POST a write token).
RULES: dict[str, str] = {
    "/": "public",
    "/login": "public",
    "/logout": "public",
    "/healthz": "public",
    "/readyz": "public",
    "/docs": "public",
    "/openapi.json": "public",
    "/static": "public",
    "/rate": "rater",
    "/rate/submit": "owner",
    "/rate/skip": "owner",
    "/rate/diff": "owner",
    "/history": "rater",
    "/history/{judgment_id}/correct": "owner",
    "/history/skips": "owner",
    "/guidelines": "rater",
    "/invite": "public",  # a one-time set-password link: the token in the path is the credential
    "/admin": "admin",
    "/api/v1": "token",
}
LOGIN = "login"  # a page refused for want of a session: 303 to /login
ALLOWED = "allowed"  # through the role check: neither a refusal nor a 5xx
PUBLIC = "public"  # anything but a 5xx (a public route may still say 401 to a wrong password)


def rule_for(path: str) -> str | None:
    """The rule of `path`: exact, else the longest prefix that ends at a segment boundary."""
    if path in RULES:
        return RULES[path]
    prefixes = [p for p in RULES if p != "/" and path.startswith(p.rstrip("/") + "/")]
    return RULES[max(prefixes, key=len)] if prefixes else None


def expected(rule: str, method: str, principal: str) -> str | int:
    """The status (or ALLOWED / LOGIN) a principal gets on a route under `rule`."""
    session = principal in ("rater", "other_rater", "admin")
    if rule == "public":
        return PUBLIC
    if rule == "token":
        if principal == "write_token" or (principal == "read_token" and method == "GET"):
            return ALLOWED
        return 403 if principal == "read_token" else 401
    if not session:
        return LOGIN  # anonymous, and tokens: a token never opens a page
    if rule == "admin":
        return ALLOWED if principal == "admin" else 403
    if rule == "owner" and principal != "rater":
        return 404  # another rater's (or an admin's) view of the rater's own work: not found
    return 200 if method == "GET" else ALLOWED


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


@pytest.fixture
def world(db: Session) -> World:
    """A rater with an assignment and a judgment; another rater; an admin; two tokens."""
    users = {"rater": make_user(db), "other_rater": make_user(db),
             "admin": make_user(db, role="admin"), "anonymous": None,
             "read_token": None, "write_token": None}
    campaign = make_campaign(db, overlap=2)
    judged, _open = make_comparisons(db, campaign, count=2)
    judgment = make_judgment(db, judged, users["rater"])
    assignment = next_assignment(db, rater=users["rater"])
    skipped = next_assignment(db, rater=users["other_rater"])
    assert assignment is not None and skipped is not None
    skip_assignment(db, rater=users["other_rater"], assignment_id=skipped.id, reason="other")
    csrf = {name: secrets.token_urlsafe(16) for name in users}
    tokens = {"read_token": make_token(db, scope="read")[1],
              "write_token": make_token(db, scope="write")[1]}
    ids = {"campaigns": campaign.id, "prompts": judged.prompt_id, "comparisons": judged.id,
           "judgments": judgment.id, "responses": judged.items[0].response_id,
           "rounds": queue_round(db, campaign_id=campaign.id).id, "skips": skipped.id}
    # Admin actions get targets of their own: deactivating or revoking a principal mid-matrix
    # would turn that principal's later answers into logins.
    params: dict[str, int | str] = {
        "campaign_id": campaign.id, "judgment_id": judgment.id, "assignment_id": assignment.id,
        "user_id": make_user(db).id, "token_id": make_token(db)[0].id, "comparison_id": judged.id,
        "response_id": judged.items[0].response_id, "token": "an-unknown-link-token",
        "round_id": ids["rounds"],
        "schedule_id": create_schedule(db, campaign_id=campaign.id, every_n_judgments=50).id,
    }
    return World(params, ids, users, csrf, tokens, assignment.id)


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


def outcome(response: Any) -> str | int:
    """What a response means for the matrix."""
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        return LOGIN
    if response.status_code in (401, 403, 404) or response.status_code >= 500:
        return response.status_code
    return response.status_code if response.request.method == "GET" and response.status_code == 200 else ALLOWED


def test_every_route_has_a_rule(client: TestClient) -> None:
    missing = [f"{e.method} {e.path}" for e in endpoints(client.app) if rule_for(e.path) is None]
    assert not missing, f"add these routes to RULES in {__file__}: {missing}"


def test_every_route_answers_every_caller_as_its_rule_says(client: TestClient, world: World) -> None:
    wrong = []
    order = ("anonymous", "read_token", "write_token", "other_rater", "admin", "rater")
    for endpoint in endpoints(client.app):
        rule = rule_for(endpoint.path)
        assert rule is not None
        for principal in order:
            want = expected(rule, endpoint.method, principal)
            got = outcome(call(client, endpoint, world, principal))
            if want == PUBLIC and (got == LOGIN or not isinstance(got, int) or got < 500):
                continue
            if want == ALLOWED and got == 404 and endpoint.path.endswith("/model-versions/{item_id}"):
                continue  # no model version exists to read: past the token check, not found
            if got != want and not (want == ALLOWED and got == 200):
                wrong.append(f"{endpoint.method} {endpoint.path} as {principal}: {got}, want {want}")
    assert set(PRINCIPALS) == set(order)
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_prefixes_at_segment_boundaries() -> None:
    assert rule_for("/admin/rounds/{round_id}") == "admin"
    assert rule_for("/administrator") is None  # not under /admin
    assert rule_for("/history/{judgment_id}/correct") == "owner"
    assert rule_for("/api/v1/new-thing") == "token"


def test_a_new_route_without_a_rule_is_caught() -> None:
    from app.main import create_app

    app = create_app()
    app.get("/reports/{report_id}")(lambda report_id: {})
    missing = [e.path for e in endpoints(app) if rule_for(e.path) is None]
    assert missing == ["/reports/{report_id}"]

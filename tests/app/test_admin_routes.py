"""Every route has a rule: /admin answers 403 to a rater and sends an anonymous visitor to login.

The test walks the app's route table, so a route added later is checked without anyone listing
it; a route outside /admin, /api and the known public and rater pages fails until it is classed.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.main import create_app
from tests.factories import make_user
from tests.web import HTML, csrf_of, login

PUBLIC = {"/", "/login", "/logout", "/healthz", "/readyz", "/docs", "/openapi.json",
          "/invite/{token}"}  # fmt: skip
RATER = {"/rate", "/rate/submit", "/rate/skip", "/rate/diff/{assignment_id}", "/history",
         "/history/{judgment_id}/correct", "/history/skips/{assignment_id}/undo",
         "/guidelines/{campaign_id}"}  # fmt: skip


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route, included routers flattened (FastAPI nests them)."""
    out = []
    for context in iter_route_contexts(create_app().routes):
        methods = getattr(context, "methods", None) or set()
        out.extend((m, str(context.path)) for m in sorted(methods - {"HEAD"}))
    return out


ADMIN_ROUTES = [(m, p) for m, p in _routes() if p == "/admin" or p.startswith("/admin/")]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_route_is_classed() -> None:
    unclassed = [
        (m, p) for m, p in _routes()
        if not (p.startswith(("/admin", "/api/", "/static")) or p in PUBLIC or p in RATER)
    ]  # fmt: skip
    assert unclassed == [], "add each new route to a rule in this test (and give it a role)"
    assert len(ADMIN_ROUTES) >= 20


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_route_refuses_raters_and_redirects_strangers(
    client: TestClient, db: Session, method: str, path: str
) -> None:
    url = _concrete(path)
    anonymous = client.request(method, url, headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303, anonymous.text[:200]
    assert anonymous.headers["location"].startswith("/login")
    rater = make_user(db)
    login(client, rater.email)
    token = csrf_of(client, "/rate")  # a valid token: the role, not CSRF, must refuse
    data = {"csrf_token": token} if method == "POST" else None
    refused = client.request(method, url, headers=HTML, data=data, follow_redirects=False)
    assert refused.status_code == 403, f"{method} {path} answered {refused.status_code} to a rater"


def test_an_admin_lands_on_the_console_and_a_rater_on_the_queue(client: TestClient, db: Session) -> None:
    admin = make_user(db, role="admin")
    token = csrf_of(client)
    landed = client.post("/login", data={"email": admin.email, "password": "correct horse battery",
                                         "csrf_token": token}, headers=HTML, follow_redirects=False)  # fmt: skip
    assert landed.headers["location"] == "/admin"
    console = client.get("/admin", headers=HTML)
    assert console.status_code == 200
    for label in ("Raters", "Campaigns", "Imports", "Tokens", "Export", "Quality", "Safety review",
                  "Audit log", "Rounds"):  # fmt: skip
        assert f">{label}</a>" in console.text
    client.post("/logout", data={"csrf_token": csrf_of(client, "/admin")}, headers=HTML)
    rater = make_user(db)
    token = csrf_of(client)
    landed = client.post("/login", data={"email": rater.email, "password": "correct horse battery",
                                         "csrf_token": token}, headers=HTML, follow_redirects=False)  # fmt: skip
    assert landed.headers["location"] == "/rate"

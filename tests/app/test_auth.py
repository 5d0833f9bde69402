"""Login, sessions, CSRF and role checks on the HTML pages (throttling: test_login_throttle.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.errors import Forbidden
from app.services.users import set_password
from app.web.auth import COOKIE, require_admin
from app.web.pages import safe_next
from tests.factories import PASSWORD, make_user
from tests.web import HTML, csrf_of, login


def test_login_sets_a_signed_httponly_samesite_cookie(client: TestClient, db: Session) -> None:
    user = make_user(db)
    response = login(client, user.email)
    assert response.status_code == 303 and response.headers["location"] == "/rate"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Secure" not in cookie
    assert user.last_login_at is not None
    assert client.get("/rate", headers=HTML).status_code == 200


def test_the_cookie_is_secure_over_https(db: Session, client: TestClient) -> None:
    user = make_user(db)
    client.base_url = client.base_url.copy_with(scheme="https")
    assert "Secure" in login(client, user.email).headers["set-cookie"]


def test_unknown_email_gets_the_same_message(client: TestClient, db: Session) -> None:
    response = login(client, "nobody@example.org")
    assert response.status_code == 401 and "Wrong email or password" in response.text


def test_posts_without_the_csrf_token_are_refused(client: TestClient, db: Session) -> None:
    user = make_user(db)
    csrf_of(client)
    response = client.post("/login", data={"email": user.email, "password": PASSWORD},
                           headers=HTML)
    assert response.status_code == 403 and "expired" in response.text
    login(client, user.email)
    forged = client.post("/rate/skip", data={"assignment_id": "1", "skip_reason": "other",
                                             "csrf_token": "forged"}, headers=HTML)
    assert forged.status_code == 403


def test_pages_need_a_login(client: TestClient) -> None:
    page = client.get("/rate", headers=HTML, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/rate"
    htmx = client.get("/rate", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.headers["HX-Redirect"] == "/login"
    assert client.get("/history", headers=HTML, follow_redirects=False).status_code == 303


def test_logout_and_password_change_end_the_session(client: TestClient, db: Session) -> None:
    user = make_user(db)
    login(client, user.email)
    token = csrf_of(client, "/rate")
    out = client.post("/logout", data={"csrf_token": token}, headers=HTML, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/rate", headers=HTML, follow_redirects=False).status_code == 303
    login(client, user.email)
    set_password(db, email=user.email, password="a brand new password")
    assert client.get("/rate", headers=HTML, follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_ignored(client: TestClient, db: Session) -> None:
    user = make_user(db)
    login(client, user.email)
    value = client.cookies.get(COOKIE)
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/rate", headers=HTML, follow_redirects=False).status_code == 303


def test_next_stays_on_this_site() -> None:
    assert safe_next("/history") == "/history"
    for bad in ("//evil.example", "https://evil.example", "/\\evil.example", "history"):
        assert safe_next(bad) == "/rate"


def test_require_admin_refuses_raters(db: Session) -> None:
    with pytest.raises(Forbidden):
        require_admin(make_user(db))
    admin = make_user(db, role="admin")
    assert require_admin(admin) is admin

"""Server-side session ends: logout, password change, deactivation, an admin's end-sessions."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.requests import Request

from app.config import get_settings
from app.services.users import end_sessions, set_active, set_password
from app.web import auth
from app.web.auth import COOKIE, current_user
from tests.factories import make_user
from tests.support import run
from tests.web import HTML, csrf_of, login


def _logged_in(client: TestClient, db: Session):
    user = make_user(db)
    client.cookies.clear()
    login(client, user.email)
    return user, client.cookies.get(COOKIE), csrf_of(client, "/history")


def _replay(client: TestClient, cookie: str, csrf: str) -> tuple[int, int]:
    """What the stolen copy of a cookie still opens: /history, and a CSRF-valid post."""
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie)
    page = client.get("/history", headers=HTML, follow_redirects=False)
    post = client.post("/rate/skip", data={"assignment_id": "1", "skip_reason": "other",
                                           "csrf_token": csrf}, headers=HTML,
                       follow_redirects=False)
    return page.status_code, post.status_code


def test_a_kept_cookie_works_until_the_session_is_ended(client: TestClient, db: Session) -> None:
    _user, cookie, csrf = _logged_in(client, db)
    page, post = _replay(client, cookie, csrf)
    assert page == 200 and post == 404  # logged in: the skip reaches the service (no such id)


def test_logout_ends_the_session_server_side(client: TestClient, db: Session) -> None:
    _user, cookie, csrf = _logged_in(client, db)
    out = client.post("/logout", data={"csrf_token": csrf}, headers=HTML, follow_redirects=False)
    assert out.status_code == 303
    # The old cookie, replayed (a shared computer, a stolen copy), opens nothing any more.
    assert _replay(client, cookie, csrf) == (303, 303)


def test_password_change_and_deactivation_end_sessions(client: TestClient, db: Session) -> None:
    user, cookie, csrf = _logged_in(client, db)
    set_password(db, email=user.email, password="a brand new password")
    assert _replay(client, cookie, csrf) == (303, 303)
    other, cookie, csrf = _logged_in(client, db)
    set_active(db, user_id=other.id, active=False)
    set_active(db, user_id=other.id, active=True)  # reactivating does not revive the old cookie
    assert _replay(client, cookie, csrf) == (303, 303)


def test_an_admin_ends_a_raters_sessions(client: TestClient, db: Session) -> None:
    admin = make_user(db, role="admin")
    user, cookie, csrf = _logged_in(client, db)
    end_sessions(db, user_id=user.id, actor_id=admin.id)
    assert _replay(client, cookie, csrf) == (303, 303)
    client.cookies.clear()
    login(client, user.email)  # a fresh login works again
    assert client.get("/history", headers=HTML).status_code == 200


def test_the_session_check_costs_no_extra_statement(client: TestClient, db: Session) -> None:
    """CONTRACTS #3: the version comes with the users row; one statement loads and checks both."""
    _user, cookie, _csrf = _logged_in(client, db)
    db.expunge_all()
    request = Request({"type": "http", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.get_bind(), "before_cursor_execute", listener)
    try:
        assert current_user(request, db) is not None
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", listener)
    assert len(statements) == 1 and "session_version" in statements[0]


def test_cli_end_sessions_and_deactivate(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run(["db", "upgrade"], url=url).returncode == 0
    assert run(["users", "create", "doc@example.org"], url=url, stdin="long enough pw\n").returncode == 0
    ended = run(["users", "end-sessions", "doc@example.org"], url=url)
    assert ended.returncode == 0 and "sessions of doc@example.org ended" in ended.stdout
    off = run(["users", "deactivate", "doc@example.org"], url=url)
    assert off.returncode == 0 and "deactivated" in off.stdout
    missing = run(["users", "end-sessions", "nobody@example.org"], url=url)
    assert missing.returncode == 2 and "no user" in missing.stderr


def test_a_cookie_expires_after_the_login_lifetime_even_when_it_was_just_accepted(
    client: TestClient, db: Session, monkeypatch
) -> None:
    _user, cookie, csrf = _logged_in(client, db)
    assert _replay(client, cookie, csrf) == (200, 404)  # accepted (and remembered as checked)
    lifetime = get_settings().session_max_age_hours * 3600
    later = time.time() + lifetime + 5
    monkeypatch.setattr(auth.time, "time", lambda: later)
    # Anonymous again: the page sends to the login, the post's CSRF token is no longer valid.
    assert _replay(client, cookie, csrf) == (303, 403)


def test_a_tampered_cookie_is_refused_every_time(client: TestClient, db: Session) -> None:
    _user, cookie, csrf = _logged_in(client, db)
    payload, _, rest = cookie.partition(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest
    for _ in range(2):
        assert _replay(client, forged, csrf) == (303, 403)

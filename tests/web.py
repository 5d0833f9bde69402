"""What tests of the web app share: the headers a browser sends, logging in, reading forms."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, make_user

HTML = {"Accept": "text/html"}


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The CSRF token embedded in the page at `path` (the page sets the cookie it matches)."""
    match = _CSRF.search(client.get(path, headers=HTML).text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD):
    """Log in as a browser would: load the form, post it with its token."""
    token = csrf_of(client)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token,
                                       "next": "/rate"}, headers=HTML, follow_redirects=False)


HX = {"HX-Request": "true"}


def form_of(html: str) -> dict[str, str]:
    """The hidden fields of the rating form."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def rater_logged_in(client: TestClient, db: Session):
    rater = make_user(db)
    login(client, rater.email)
    return rater


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


def admin_post(client: TestClient, path: str, data: dict[str, object], **kw: object):
    token = csrf_of(client, "/admin")
    return client.post(path, data={**data, "csrf_token": token}, headers=HTML,
                       follow_redirects=False, **kw)  # type: ignore[arg-type]  # fmt: skip

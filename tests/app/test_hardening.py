"""Bounded ids, body limits, the token before the body, JSON errors, security headers, 503s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import build_engine, get_session
from app.main import create_app
from app.web.auth import COOKIE, _serializer
from tests.app.callers import World, call, endpoints, fill
from tests.factories import make_token

HUGE = 2**70
MIB = 1024 * 1024


def test_huge_ids_are_404_or_422_on_every_route(client: TestClient, world: World) -> None:
    bad = []
    for endpoint in endpoints(client.app):
        if "{" not in endpoint.path:
            continue
        for principal in ("rater", "admin", "write_token"):
            response = call(client, endpoint, world, principal, path=fill(endpoint.path, world,
                                                                          value=HUGE))
            if response.status_code not in (303, 401, 403, 404, 422):
                bad.append(f"{endpoint.method} {endpoint.path} as {principal}: {response.status_code}")
    assert not bad, bad


@pytest.mark.parametrize("route", ["/rate/submit", "/rate/skip"])
def test_a_huge_assignment_id_in_a_form_is_422(client: TestClient, world: World,
                                               route: str) -> None:
    from tests.app.callers import Endpoint

    world.assignment_id = HUGE
    response = call(client, Endpoint("POST", route), world, "rater")
    assert response.status_code == 422 and "out of range" in response.text


def _broken_json(size: int) -> bytes:
    return b'{"records": [' + b"x" * size


def test_api_writes_check_the_token_before_reading_the_body(client: TestClient, db: Session) -> None:
    body = _broken_json(20 * MIB)
    headers = {"Content-Type": "application/json"}
    anonymous = client.post("/api/v1/rounds", content=body, headers=headers)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    _, read = make_token(db, scope="read")
    under = client.post("/api/v1/rounds", content=body,
                        headers={**headers, "Authorization": f"Bearer {read}"})
    assert under.status_code == 403
    _, write = make_token(db, scope="write")
    broken = client.post("/api/v1/rounds", content=b'{"campaign_id": 1,,}',
                         headers={**headers, "Authorization": f"Bearer {write}"})
    assert broken.status_code == 422
    error = broken.json()
    assert error["field"] == "body" and not any(c.isdigit() for c in error["message"]), error


def test_bodies_over_the_limit_are_413(client: TestClient, db: Session) -> None:
    _, write = make_token(db, scope="write")
    limit = get_settings().max_upload_bytes
    big = client.post("/api/v1/rounds", content=_broken_json(limit + 1),
                      headers={"Authorization": f"Bearer {write}",
                               "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    form = client.post("/login", data={"email": "a" * (get_settings().max_form_bytes + 1)})
    assert form.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for _ in range(get_settings().max_form_bytes // 65536 + 2):
            yield b"x" * 65536

    streamed = client.post("/rate/skip", content=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413


DATA_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def test_every_response_carries_the_security_headers(client: TestClient, db: Session) -> None:
    _, read = make_token(db, scope="read")
    auth = {"Authorization": f"Bearer {read}"}
    responses = {
        "api 200": client.get("/api/v1/campaigns", headers=auth),
        "api 401": client.get("/api/v1/campaigns"),
        "export": client.get("/api/v1/export", headers=auth),
        "openapi": client.get("/openapi.json"),
        "redirect": client.get("/", follow_redirects=False),
        "page": client.get("/login"),
        "404": client.get("/no/such/page"),
        "413": client.post("/login", content=b"x" * (get_settings().max_form_bytes + 1)),
        "health": client.get("/healthz"),
    }
    for name, response in responses.items():
        for header, value in DATA_HEADERS.items():
            assert response.headers.get(header) == value, (name, header, response.headers)
        csp = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, name
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: no HSTS
    static = client.get("/static/css/app.css")
    assert static.headers["X-Content-Type-Options"] == "nosniff" and "no-store" not in static.headers.get("Cache-Control", "")


def test_docs_run_under_a_csp_without_inline_scripts(client: TestClient) -> None:
    docs = client.get("/docs")
    csp = docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert "<script>" not in docs.text and "/static/js/swagger-init.js" in docs.text
    assert client.get("/static/js/swagger-init.js").status_code == 200


def test_hsts_over_https(client: TestClient) -> None:
    client.base_url = client.base_url.copy_with(scheme="https")
    response = client.get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_database_that_does_not_answer_gives_a_clear_503(db: Session) -> None:
    """Nothing mocked: the session is bound to a port where no database listens."""
    dead = build_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    app = create_app()

    def down() -> Iterator[Session]:
        with Session(dead) as session, session.begin():
            yield session

    app.dependency_overrides[get_session] = down
    _, read = make_token(db, scope="read")
    with TestClient(app) as client:
        api = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {read}"})
        client.cookies.set(COOKIE, _serializer().dumps({"uid": 1, "csrf": "c", "sv": 0}))
        page = client.get("/history", headers={"Accept": "text/html"}, follow_redirects=False)
    assert api.status_code == 503 and api.json()["code"] == "unavailable"
    assert api.headers["Retry-After"] == "2" and api.headers["Cache-Control"] == "no-store"
    dead.dispose()
    assert page.status_code == 503 and "Try again in a few seconds" in page.text

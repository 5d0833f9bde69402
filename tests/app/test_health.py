"""Probes: /healthz while the process lives; /readyz only when the database is migrated."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.migrate import upgrade


def test_ready_on_the_migrated_test_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


@pytest.fixture
def fresh_app(point_app_at):
    """An app pointed at another database; the test database again after."""
    def point_at(url: str) -> TestClient:
        point_app_at(url)
        return TestClient(create_app())
    return point_at


def test_not_ready_when_unmigrated_or_unreachable(fresh_app, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    client = fresh_app(url)
    assert client.get("/healthz").status_code == 200
    unmigrated = client.get("/readyz")
    assert unmigrated.status_code == 503 and "prefloop db upgrade" in unmigrated.json()["reason"]
    upgrade(url)
    assert client.get("/readyz").status_code == 200
    down = fresh_app("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert down.get("/readyz").status_code == 503

"""docker-compose.yml parses and its commands are ones this repository really has."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from app.cli import cli


def _compose() -> dict:
    return yaml.safe_load(Path("docker-compose.yml").read_text())


def test_compose_names_db_migrate_and_web() -> None:
    services = _compose()["services"]
    assert {"db", "migrate", "web"} <= set(services)
    assert "pgdata" in _compose()["volumes"]
    assert "healthcheck" in services["db"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_commands_exist() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert Path("alembic.ini").exists()
    web = services["web"]["command"]
    assert web[0] == "prefloop"
    result = CliRunner().invoke(cli, [*web[1:2], "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--workers" in result.output


def test_compose_runs_production_with_a_required_secret() -> None:
    env = _compose()["services"]["web"]["environment"]
    assert env["PREFLOOP_ENV"] == "production"
    assert env["PREFLOOP_SECRET_KEY"].startswith("${PREFLOOP_SECRET_KEY:?")
    assert env["PREFLOOP_DATABASE_URL"].startswith("postgresql+psycopg://")
    dockerfile = Path("Dockerfile").read_text()
    assert "pip install -e ." in dockerfile and "USER prefloop" in dockerfile

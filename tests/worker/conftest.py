"""The worker's fixtures: a worker process's environment (tiny models from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import worker_environment


@pytest.fixture
def worker_env(pg_url: str, tmp_path: Path, tiny_policy_dir: Path, tiny_bert_dir: Path) -> dict[str, str]:
    """The environment of a worker process: the test database, tiny models, short leases."""
    return worker_environment(pg_url, tmp_path / "artifacts", tiny_policy_dir, tiny_bert_dir)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Rounds run in this process write their artifacts under the test's tmp_path."""
    from app.config import get_settings

    monkeypatch.setenv("PREFLOOP_MODEL_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()

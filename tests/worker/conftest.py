"""The worker's fixtures: a worker process's environment (tiny models from tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_env(pg_url: str, tmp_path: Path, tiny_policy_dir: Path, tiny_bert_dir: Path) -> dict[str, str]:
    """The environment of a worker process: the test database, tiny models, short leases."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFLOOP_ENV": "test",
        "PREFLOOP_DATABASE_URL": pg_url,
        "PREFLOOP_MODEL_DIR": str(tmp_path / "artifacts"),
        "PREFLOOP_POLICY_MODEL": str(tiny_policy_dir),
        "PREFLOOP_REWARD_MODEL": str(tiny_bert_dir),
        "PREFLOOP_WORKER_LEASE_SECONDS": "6",
        "PREFLOOP_WORKER_POLL_SECONDS": "0.5",
        # One thread per process: the shared CPUs are oversubscribed otherwise.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Rounds run in this process write their artifacts under the test's tmp_path."""
    from app.config import get_settings

    monkeypatch.setenv("PREFLOOP_MODEL_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()

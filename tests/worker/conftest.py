"""The worker's fixtures: tiny locally built models (as the trainer's tests build them), a worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.conftest import minilm_tokenizer_dir, tiny_bert_dir, tiny_policy_dir

__all__ = ["minilm_tokenizer_dir", "tiny_bert_dir", "tiny_policy_dir"]
REPO = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 6


def worker_environment(url: str, artifacts: Path, policy: Path, reward: Path) -> dict[str, str]:
    """The environment of a worker process on `url`: tiny models, short leases, one thread."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFLOOP_ENV": "test",
        "PREFLOOP_DATABASE_URL": url,
        "PREFLOOP_MODEL_DIR": str(artifacts),
        "PREFLOOP_POLICY_MODEL": str(policy),
        "PREFLOOP_REWARD_MODEL": str(reward),
        "PREFLOOP_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "PREFLOOP_WORKER_POLL_SECONDS": "0.5",
        # One thread per process: the shared CPUs are oversubscribed otherwise.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.fixture
def worker_env(pg_url: str, tmp_path: Path, tiny_policy_dir: Path, tiny_bert_dir: Path) -> dict[str, str]:
    """The environment of a worker process: the test database, tiny models, short leases."""
    return worker_environment(pg_url, tmp_path / "artifacts", tiny_policy_dir, tiny_bert_dir)


def start_worker(env: dict[str, str], log: Path, *, until_idle: bool = True, name: str = "w") -> subprocess.Popen[bytes]:
    """`prefloop worker` as its own process, its output in `log`."""
    args = [sys.executable, "-c", "from app.cli import main; main()", "worker", "--worker-id", name]
    if until_idle:
        args.append("--until-idle")
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Rounds run in this process write their artifacts under the test's tmp_path."""
    from app.config import get_settings

    monkeypatch.setenv("PREFLOOP_MODEL_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()

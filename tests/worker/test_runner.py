"""How the worker starts a trainer step: plain on one device, under `accelerate launch` on several."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.worker import runner
from tests.support import REPO


def test_a_cpu_host_starts_plain_trainers_without_importing_torch_in_the_worker() -> None:
    if not runner._no_accelerator_devices():
        pytest.skip("this host has a GPU device node")
    probe = ("import sys; from app.worker.runner import trainer_command; "
             "print(trainer_command(['reward'])[1:], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['-m', 'trainer', 'reward'] False"


def test_several_gpus_launch_training_steps_with_accelerate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_gpu_count", lambda: 4)
    assert runner.trainer_command(["rloo", "--k", "4"])[1:] == [
        "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "-m", "trainer", "rloo", "--k", "4"]
    assert runner.trainer_command(["generate"])[1:] == ["-m", "trainer", "generate"]  # one process samples


def test_the_worker_sees_a_trainer_end_at_once_not_at_its_next_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "trainer_command", lambda args: [sys.executable, "-c", "pass"])
    started = time.perf_counter()
    runner.run_trainer(["noop"], log=tmp_path / "log", lost=threading.Event(), cancel_check=30)
    assert time.perf_counter() - started < 10  # a 30 s check interval would have waited it out

"""Trainer steps in a subprocess: a CUDA crash or out-of-memory kills the step, not the worker."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from app.db import REPO_ROOT

TAIL_LINES = 40
TAIL_CHARS = 8000


class StepFailed(Exception):
    """A step that cannot succeed: the round fails with this reason (and the log's tail)."""


class LeaseLost(Exception):
    """Another worker owns the round now (or ours ran out): stop without writing anything."""


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of a log file ('' when there is none)."""
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 64 * 1024))
        text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])[-TAIL_CHARS:]


def _die_with_parent() -> None:
    # Linux: the trainer gets SIGKILL when the worker dies (even by SIGKILL), so no orphan keeps
    # writing into a step directory that the worker taking the round over starts afresh.
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _no_accelerator_devices() -> bool:
    """True on a Linux host with no GPU device node: NVIDIA, AMD (kfd) or WSL2's (dxg)."""
    if sys.platform != "linux":
        return False
    dev = Path("/dev")
    return not any(dev.glob("nvidia[0-9]*")) and not any((dev / n).exists() for n in ("kfd", "dxg"))


@functools.cache
def _gpu_count() -> int:
    # A CPU host answers without importing torch: seconds and ~300 MB the worker never needs.
    if _no_accelerator_devices():
        return 0
    try:
        import torch
    except ImportError:  # the worker's host has no training stack: the subprocess will say so
        return 0
    return int(torch.cuda.device_count())


def trainer_command(args: list[str]) -> list[str]:
    """`python -m trainer ARGS`, under `accelerate launch` when the host has several GPUs."""
    gpus = _gpu_count()
    if gpus > 1 and args[0] != "policy-compare" and args[0] != "generate":
        launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus)]
        return [sys.executable, *launch, "-m", "trainer", *args]
    return [sys.executable, "-m", "trainer", *args]


def _reason(log: Path, code: int) -> str:
    """A one-line reason: the last line the trainer printed (its exception), and the exit code."""
    last = next((line for line in reversed(tail(log).splitlines()) if line.strip()), "")
    if code < 0:
        return f"trainer killed by signal {-code} (out of memory?): {last}"[:500]
    return f"trainer exited with code {code}: {last}"[:500]


def _exited(proc: subprocess.Popen[bytes], *, within: float) -> bool:
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return False
    return True


def run_trainer(
    args: list[str], *, log: Path, lost: threading.Event, cancel_check: float = 1.0
) -> float:
    """Run one trainer command to completion, its output appended to `log`; its wall seconds.

    Raises StepFailed on a nonzero exit, LeaseLost (after killing it) when the lease is lost.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    with log.open("ab") as out:
        out.write(f"$ python -m trainer {' '.join(args)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            trainer_command(args), stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=str(REPO_ROOT), preexec_fn=_die_with_parent,
        )  # fmt: skip
        while not _exited(proc, within=cancel_check):  # returns as soon as the trainer ends
            if lost.is_set():
                proc.kill()
                proc.wait()
                raise LeaseLost("the round's lease was lost; its trainer step was stopped")
    if proc.returncode != 0:
        raise StepFailed(_reason(log, proc.returncode))
    return time.perf_counter() - started

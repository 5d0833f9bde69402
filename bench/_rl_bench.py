"""Shared plumbing for bench/rloo_vs_trl.py and bench/ppo_vs_trl.py.

Each contestant runs in a fresh child process, so its peak RSS is its own; each child prints one
JSON line with its step end times. Seconds per step drop the first step (warm-up, lazy inits).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

PROMPTS = [
    f"Patient {i}: I have had a fever of {37 + i % 3} degrees for {1 + i % 4} days. What should I do?"
    for i in range(64)
]


def vowel_count(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    """The benchmark reward (both sides): vowels in the response text."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [float(sum(ch in "aeiou" for ch in t)) for t in texts]


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_stats(ends: list[float], start: float) -> dict[str, float]:
    """Median and mean seconds per step, excluding the first (warm-up) step."""
    times = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)][1:]
    return {"sec_per_step_median": statistics.median(times), "sec_per_step_mean": sum(times) / len(times),
            "steps_timed": len(times)}  # fmt: skip


def emit(result: dict[str, Any]) -> None:
    """Print the worker's result as the last stdout line."""
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_worker(script: str, name: str, args: list[str]) -> dict[str, Any]:
    """Run `script --worker name ...` in a child process and parse its JSON result."""
    cmd = [sys.executable, script, "--worker", name, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_args(args: Any) -> list[str]:
    """The parent's parsed options as command-line flags for a worker (booleans as --[no-]x)."""
    out = []
    for key, value in vars(args).items():
        if key in ("worker", "repeats"):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out.append(f"{flag}={value}")
    return out


def run_all(script: str, names: list[str], args: list[str], repeats: int) -> dict[str, Any]:
    """Run the contestants `repeats` times, interleaved (the CPU is shared: load drifts), and
    keep for each the run with the median seconds per step."""
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(run_worker(script, name, args))
    out = {}
    for name, rs in runs.items():
        rs.sort(key=lambda r: r["sec_per_step_median"])
        out[name] = {**rs[len(rs) // 2], "repeats": len(rs),
                     "all_sec_per_step": [round(r["sec_per_step_median"], 3) for r in rs]}  # fmt: skip
    return out


def time_our_steps(train: Callable[[], dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Run one of our trainers; the `elapsed_s` of each metrics.jsonl row is its step end time."""
    train()
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    ends = [r["elapsed_s"] for r in rows]
    return {**step_stats(ends, 0.0), "reward_first": rows[0]["reward_mean"],
            "reward_last": rows[-1]["reward_mean"]}  # fmt: skip


def trl_step_timer() -> Any:
    """A TrainerCallback that records the wall time at each optimizer step's end."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.start, self.ends = time.perf_counter(), []

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.ends.append(time.perf_counter())

    return StepTimer()


def report(title: str, results: dict[str, dict[str, Any]], baseline: str) -> None:
    """Print a small table and the ratio of each contestant to `baseline`."""
    print(title)
    print(f"{'contestant':<28}{'s/step (median)':>16}{'s/step (mean)':>15}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<28}{r['sec_per_step_median']:>16.3f}{r['sec_per_step_mean']:>15.3f}"
              f"{r['peak_rss_mb']:>14.0f}")  # fmt: skip
    base = results[baseline]
    for name, r in results.items():
        if name != baseline:
            ratio = r["sec_per_step_median"] / base["sec_per_step_median"]
            mem = r["peak_rss_mb"] / base["peak_rss_mb"]
            print(f"{name} / {baseline}: time x{ratio:.2f}, peak memory x{mem:.2f}")
    for name, r in results.items():
        print(
            f"{name}: s/step medians over {r['repeats']} interleaved runs: {r['all_sec_per_step']}"
        )

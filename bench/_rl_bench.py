"""Shared plumbing for bench/rloo_vs_trl.py and bench/ppo_vs_trl.py.

Each contestant runs in a fresh child process, so its peak RSS is its own; each child prints one
JSON line with its step end times. Seconds per step drop the first step (warm-up, lazy inits).
CPU seconds (the process's, all threads) stand beside wall seconds: on a shared machine they
move less with the load.

The per-step breakdown (wall and CPU seconds per phase) comes from `trainer.rl.PhaseTimer` on
both sides: our trainers time their own phases into metrics.jsonl; TRL's methods are wrapped on
the trainer instance (`attach_trl_timer`), each call billed to one phase:
  generate     RLOOTrainer/GRPOTrainer._generate (tokenise prompts, generate, decode)
  score        ._calculate_rewards
  old_forward  ._get_per_token_logps_and_entropies under no_grad on the policy
  ref_forward  the same on .ref_model
  forward      the same with grad enabled (inside compute_loss), on the policy
  backward     .accelerator.backward
  optimizer    ._clip_grad_norm, then optimizer.step (between the on_pre_optimizer_step and
               on_optimizer_step callbacks)
  other        the step's time minus the phases (loss maths, metrics, logging, data loading)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
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


PHASES = ("generate", "score", "old_forward", "ref_forward", "forward", "backward", "optimizer")


def step_stats(
    ends: list[float],
    start: float,
    cpu_ends: list[float],
    cpu_start: float,
    phases: list[dict[str, float]],
) -> dict[str, Any]:
    """Median and mean wall/CPU seconds per step and the mean per phase, without the first step.

    `phases` holds one `PhaseTimer.take()` dict per step; the phase means plus `other` add up to
    the mean step time.
    """
    times = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)][1:]
    cpus = [b - a for a, b in zip([cpu_start, *cpu_ends[:-1]], cpu_ends, strict=True)][1:]
    breakdown = {}
    for kind, total in (("time", times), ("cpu", cpus)):
        per_phase = {p: sum(row.get(f"{kind}_{p}_s", 0.0) for row in phases[1:]) / len(times)
                     for p in PHASES}  # fmt: skip
        per_phase["other"] = sum(total) / len(total) - sum(per_phase.values())
        breakdown[kind] = per_phase
    return {"sec_per_step_median": statistics.median(times), "sec_per_step_mean": sum(times) / len(times),
            "cpu_per_step_median": statistics.median(cpus), "steps_timed": len(times),
            "breakdown": breakdown}  # fmt: skip


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
        if key in ("worker", "repeats", "contestants"):
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
    for repeat in range(repeats):
        for name in names:
            load = os.getloadavg()[0]
            runs[name].append({**run_worker(script, name, args), "load_before": load})
            r = runs[name][-1]
            print(f"  repeat {repeat + 1} {name}: {r['sec_per_step_median']:.2f} s/step, "
                  f"{r['cpu_per_step_median']:.2f} CPU s/step, load {load:.1f}", flush=True)  # fmt: skip
            print(f"  {name} result: {json.dumps(r)}", flush=True)  # the whole record, breakdown too
    out = {}
    for name, rs in runs.items():
        rs.sort(key=lambda r: r["sec_per_step_median"])
        out[name] = {**rs[len(rs) // 2], "repeats": len(rs),
                     "all_sec_per_step": [round(r["sec_per_step_median"], 3) for r in rs],
                     "all_cpu_per_step": sorted(round(r["cpu_per_step_median"], 3) for r in rs),
                     "all_peak_rss_mb": sorted(round(r["peak_rss_mb"]) for r in rs),
                     "loads": [round(r["load_before"], 1) for r in rs]}  # fmt: skip
    return out


def time_our_steps(train: Callable[[], dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Run one of our trainers; the `elapsed_s` of each metrics.jsonl row is its step end time."""
    train()
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    stats = step_stats([r["elapsed_s"] for r in rows], 0.0, [r["cpu_s"] for r in rows], 0.0, rows)
    lengths = [r["response_length"] for r in rows]
    return {**stats, "reward_first": rows[0]["reward_mean"], "reward_last": rows[-1]["reward_mean"],
            "response_length": sum(lengths) / len(lengths)}  # fmt: skip


def trl_log_summary(trainer: Any) -> dict[str, float]:
    """First and last reward and the mean response length (tokens) from a TRL trainer's log."""
    history = trainer.state.log_history
    rewards = [h["reward"] for h in history if "reward" in h]
    lengths = [h["completions/mean_length"] for h in history if "completions/mean_length" in h]
    return {"reward_first": rewards[0], "reward_last": rewards[-1],
            "response_length": sum(lengths) / len(lengths)}  # fmt: skip


def trl_step_timer() -> Any:
    """A TrainerCallback recording each optimizer step's end (wall, CPU) and phase times.

    Call `.attach(trainer)` once the trainer exists: it wraps the trainer's methods (see the
    module docstring) so their time is billed to phases.
    """
    from transformers import TrainerCallback

    from trainer.rl import PhaseTimer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.start, self.cpu_start = time.perf_counter(), time.process_time()
            self.ends: list[float] = []
            self.cpu_ends: list[float] = []
            self.phases: list[dict[str, float]] = []
            self.timer = PhaseTimer()
            self._opt: Any = None

        def attach(self, trainer: Any) -> None:
            import torch

            def billed(fn: Callable[..., Any], phase: str | Callable[..., str]) -> Any:
                def wrapper(*a: Any, **k: Any) -> Any:
                    with self.timer(phase(*a) if callable(phase) else phase):
                        return fn(*a, **k)

                return wrapper

            def logps_phase(model: Any, *_: Any) -> str:
                if model is trainer.ref_model:
                    return "ref_forward"
                return "forward" if torch.is_grad_enabled() else "old_forward"

            trainer._generate = billed(trainer._generate, "generate")
            trainer._calculate_rewards = billed(trainer._calculate_rewards, "score")
            trainer._get_per_token_logps_and_entropies = billed(
                trainer._get_per_token_logps_and_entropies, logps_phase
            )
            trainer.accelerator.backward = billed(trainer.accelerator.backward, "backward")
            trainer._clip_grad_norm = billed(trainer._clip_grad_norm, "optimizer")

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_pre_optimizer_step(self, *a: Any, **k: Any) -> None:
            self._opt = self.timer("optimizer")
            self._opt.__enter__()

        def on_optimizer_step(self, *a: Any, **k: Any) -> None:
            self._opt.__exit__(None, None, None)

        def on_step_end(self, *a: Any, **k: Any) -> None:
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())
            self.phases.append(self.timer.take())

        def stats(self, every: int = 1) -> dict[str, Any]:
            """`step_stats` over groups of `every` optimizer steps (GRPO: one rollout)."""
            phases: list[dict[str, float]] = []
            for i in range(0, len(self.phases), every):
                summed: dict[str, float] = defaultdict(float)
                for row in self.phases[i : i + every]:
                    for key, value in row.items():
                        summed[key] += value
                phases.append(summed)
            return step_stats(self.ends[every - 1 :: every], self.start,
                              self.cpu_ends[every - 1 :: every], self.cpu_start, phases)  # fmt: skip

    return StepTimer()


def report(title: str, results: dict[str, dict[str, Any]], baseline: str) -> None:
    """Print a small table and the ratio of each contestant to `baseline`."""
    print(title)
    print(f"{'contestant':<28}{'s/step (median)':>16}{'s/step (mean)':>15}{'CPU s/step':>12}"
          f"{'peak RSS MiB':>14}")  # fmt: skip
    for name, r in results.items():
        print(f"{name:<28}{r['sec_per_step_median']:>16.3f}{r['sec_per_step_mean']:>15.3f}"
              f"{r['cpu_per_step_median']:>12.3f}{r['peak_rss_mb']:>14.0f}")  # fmt: skip
    base = results[baseline]
    for name, r in results.items():
        if name != baseline:
            ratio = r["sec_per_step_median"] / base["sec_per_step_median"]
            cpu = r["cpu_per_step_median"] / base["cpu_per_step_median"]
            mem = r["peak_rss_mb"] / base["peak_rss_mb"]
            print(f"{name} / {baseline}: time x{ratio:.2f}, CPU time x{cpu:.2f}, "
                  f"peak memory x{mem:.2f}")  # fmt: skip
    for name, r in results.items():
        # Equal work: each side's sampled responses, in tokens (generation stops at EOS).
        print(f"{name}: mean response length {r.get('response_length', float('nan')):.1f} tokens")
    for name, r in results.items():
        print(f"{name}: over {r['repeats']} interleaved runs: s/step {r['all_sec_per_step']}, "
              f"CPU s/step {r['all_cpu_per_step']}, peak RSS MiB {r['all_peak_rss_mb']}, "
              f"1-min load before each run {r['loads']}")  # fmt: skip
    print("breakdown: mean wall s (CPU s) per step and phase, of the median run")
    print(f"{'phase':<14}" + "".join(f"{name:>22}" for name in results))
    for phase in (*PHASES, "other"):
        cells = [f"{r['breakdown']['time'][phase]:.2f} ({r['breakdown']['cpu'][phase]:.2f})"
                 for r in results.values()]  # fmt: skip
        print(f"{phase:<14}" + "".join(f"{c:>22}" for c in cells))

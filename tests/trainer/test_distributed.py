"""Several processes on one CPU host, as `torchrun` starts them: they train together, never hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import marker_rankings
from trainer.data import write_records

REPO = Path(__file__).resolve().parents[2]


def torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node 2 -m trainer ...`, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*cmd, "-m", "trainer", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_two_processes_train_one_reward_model_with_chunked_batches(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    train, held, out = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "rm"
    write_records(marker_rankings(64, seed=0), train)
    write_records(marker_rankings(24, 1, start=500), held)
    # --forward-cost 4 splits nearly every batch, into a different number of chunks on each rank:
    # DDP must not wait on a collective at every forward (it hung before broadcast_buffers=False).
    done = torchrun(
        "reward", "--data", str(train), "--eval-data", str(held), "--model", str(tiny_bert_dir),
        "--out", str(out), "--epochs", "3", "--batch-size", "4", "--lr", "2e-3",
        "--max-length", "32", "--forward-cost", "4", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["train_pairs_seen"] == 64 * 6 * 3  # every comparison once an epoch, not twice
    assert metrics["eval_accuracy"] > 0.7
    assert len([ln for ln in done.stdout.splitlines() if ln.startswith('{"learned')]) == 1


@pytest.mark.parametrize("method", ["rloo", "ppo"])
def test_two_processes_run_policy_optimisation(
    method: str, tiny_policy_dir: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(8)))
    # PPO samples one response a prompt; RLOO's update runs in chunks, synced on the last only.
    samples = ["--k", "2", "--forward-batch-size", "1"] if method == "rloo" else []
    done = torchrun(
        method, "--model", str(tiny_policy_dir), "--out", str(tmp_path / "run"),
        "--prompts", str(prompts), "--reward-model", str(tiny_policy_dir), "--steps", "2",
        "--prompts-per-step", "2", *samples, "--max-new-tokens", "4", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()


def test_one_process_builds_accelerators_of_different_precisions_in_turn() -> None:
    # A worker may fit a bf16 policy after an fp32 one; Accelerate's singleton refused that.
    from trainer.launch import make_accelerator

    assert make_accelerator(mixed_precision="bf16").mixed_precision == "bf16"
    assert make_accelerator(mixed_precision="no").mixed_precision == "no"

"""RLOO end to end on the tiny policy: it learns a verifiable reward, logs, guards, saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.config import RLOOConfig
from trainer.rl import RewardModelScorer, TrainingDiverged
from trainer.rloo import train_rloo

pytestmark = pytest.mark.usefixtures("torch_threads")

PROMPTS = [f"Patient {i}: what should I take for the fever?" for i in range(16)]
VOWELS = set("aeiou")


def vowel_count(prompts: list[str], responses: list[str]) -> list[float]:
    """An easy-to-verify reward: how many vowels the response has (the random policy: ~7 in 8)."""
    return [float(sum(c in VOWELS for c in r)) for r in responses]


def mean(rows: list[dict], key: str) -> float:  # type: ignore[type-arg]
    return sum(r[key] for r in rows) / len(rows)


def test_rloo_raises_the_reward_with_bounded_kl(tiny_policy_dir: Path, tmp_path: Path) -> None:
    config = RLOOConfig(
        model=str(tiny_policy_dir), out=str(tmp_path), steps=16, prompts_per_step=8, k=4,
        max_new_tokens=8, lr=5e-3, kl_coef=0.3, missing_eos_penalty=0.0, progress=False,
    )  # fmt: skip
    metrics = train_rloo(config, prompts=PROMPTS, reward=vowel_count)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and metrics["steps"] == 16
    before, after = mean(rows[:3], "reward_mean"), mean(rows[-3:], "reward_mean")
    assert after > 1.4 * before, (before, after)  # seed 42, 1 thread: 8.3 -> 17.0, max KL 7.5
    assert max(r["kl"] for r in rows) < 15.0
    assert rows[0]["kl"] == 0.0 and rows[0]["ratio"] == 1.0  # step 1: policy == reference
    for key in ("loss", "entropy", "reward_std", "response_length", "clipfrac", "no_eos_frac"):
        assert key in rows[-1]
    # Where a step's time went (32 rows in pieces of 16: the second piece needs a forward of its
    # own for its old log-probs, the first one's update forward serves as its).
    phases = ("generate", "score", "old_forward", "ref_forward", "forward", "backward", "optimizer")
    assert all(rows[-1][f"time_{p}_s"] > 0 and f"cpu_{p}_s" in rows[-1] for p in phases)
    assert rows[-1]["cpu_s"] > rows[0]["cpu_s"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["method"] == "rloo" and Path(saved["policy_path"]).is_dir()
    assert json.loads((Path(saved["policy_path"]) / "train_config.json").read_text())["k"] == 4


def test_rloo_stops_on_runaway_kl_without_saving(tiny_policy_dir: Path, tmp_path: Path) -> None:
    config = RLOOConfig(
        model=str(tiny_policy_dir), out=str(tmp_path), steps=20, prompts_per_step=4, k=2,
        max_new_tokens=6, lr=0.5, max_kl=0.5, progress=False,
    )  # fmt: skip
    with pytest.raises(TrainingDiverged, match="KL|non-finite|ratio"):
        train_rloo(config, prompts=PROMPTS, reward=vowel_count)
    assert not (tmp_path / "policy").exists()


def test_rloo_rejects_a_nan_reward(tiny_policy_dir: Path) -> None:
    config = RLOOConfig(model=str(tiny_policy_dir), steps=1, prompts_per_step=2, k=2,
                        max_new_tokens=4, progress=False)  # fmt: skip
    with pytest.raises(TrainingDiverged, match="NaN"):
        train_rloo(config, prompts=PROMPTS, reward=lambda p, r: [float("nan")] * len(r))


def test_rloo_with_a_reward_model_directory_and_lora(tiny_policy_dir: Path, tmp_path: Path) -> None:
    config = RLOOConfig(
        model=str(tiny_policy_dir), out=str(tmp_path), steps=2, prompts_per_step=2, k=2,
        max_new_tokens=4, lora=True, lora_r=4, progress=False,
    )  # fmt: skip
    metrics = train_rloo(config, prompts=PROMPTS, reward=str(tiny_policy_dir))
    assert metrics["steps"] == 2 and all(
        torch.isfinite(torch.tensor(v)) for v in metrics["last"].values()
    )
    # 4 rows fit one forward piece: the policy is forwarded once per step (its update forward gives
    # the old log-probs); the adapter-off reference once more.
    assert "time_old_forward_s" not in metrics["last"]
    assert metrics["last"]["time_forward_s"] > 0 and metrics["last"]["time_ref_forward_s"] > 0
    assert (tmp_path / "policy" / "config.json").exists()  # LoRA merged into a plain checkpoint


def test_reward_scorer_reads_the_last_real_token_when_pad_is_eos(tiny_policy_dir: Path) -> None:
    scorer = RewardModelScorer(tiny_policy_dir)
    prompts, responses = ["a long prompt about fever", "hi"], ["take rest and water", "ok"]
    batched = scorer(prompts, responses)
    alone = torch.cat([scorer([p], [r]) for p, r in zip(prompts, responses, strict=True)])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_rloo_cli_with_a_reward_model_directory(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from trainer.__main__ import main

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:4]))
    rc = main(["rloo", "--model", str(tiny_policy_dir), "--out", str(tmp_path / "run"),
               "--prompts", str(prompts), "--reward-model", str(tiny_policy_dir), "--steps", "2",
               "--prompts-per-step", "2", "--k", "2", "--max-new-tokens", "4",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()

"""PPO end to end on the tiny policy, its value head and the adaptive KL controller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.config import PPOConfig
from trainer.policy import encode_prompts, load_policy, sample
from trainer.ppo import AdaptiveKL, PolicyWithValue, train_ppo

pytestmark = pytest.mark.usefixtures("torch_threads")

PROMPTS = [f"Patient {i}: what should I take for the fever?" for i in range(32)]


def vowel_count(prompts: list[str], responses: list[str]) -> list[float]:
    """An easy-to-verify reward: how many vowels the response has."""
    return [float(sum(c in "aeiou" for c in r)) for r in responses]


def test_ppo_raises_the_reward_with_bounded_kl(tiny_policy_dir: Path, tmp_path: Path) -> None:
    config = PPOConfig(
        model=str(tiny_policy_dir), out=str(tmp_path), steps=12, prompts_per_step=16,
        max_new_tokens=8, lr=3e-3, kl_coef=0.05, epochs=2, minibatches=2,
        missing_eos_penalty=0.0, progress=False,
    )  # fmt: skip
    metrics = train_ppo(config, prompts=PROMPTS, reward=vowel_count)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and metrics["method"] == "ppo"
    before = sum(r["reward_mean"] for r in rows[:3]) / 3
    after = sum(r["reward_mean"] for r in rows[-3:]) / 3
    assert after > 1.3 * before, (before, after)  # seed 42, 1 thread: 6.8 -> 12.8, max KL 7.6
    assert rows[0]["kl"] == 0.0 and max(r["kl"] for r in rows) < 15.0
    for key in ("vf_loss", "clipfrac", "vf_clipfrac", "approx_kl", "entropy", "no_eos_frac"):
        assert torch.isfinite(torch.tensor(rows[-1][key]))
    assert (tmp_path / "policy" / "model.safetensors").exists()


def test_value_head_starts_at_zero_and_is_masked(tiny_policy_dir: Path) -> None:
    policy, tok = load_policy(tiny_policy_dir)
    model = PolicyWithValue(policy.eval())
    ids, mask = encode_prompts(tok, PROMPTS[:2])
    torch.manual_seed(0)
    roll = sample(policy, tok, ids, mask, max_new_tokens=5)
    rmask = roll.response_mask.clone()
    rmask[0, 3:] = 0  # pretend row 0 ended at token 2
    logps, entropy, values = model(roll.prompt_ids, roll.prompt_mask, roll.response_ids, rmask,
                                   with_entropy=True)  # fmt: skip
    assert values.shape == logps.shape == (2, 5) and entropy is not None
    assert (values == 0).all()  # zero-initialised head
    torch.nn.init.ones_(model.value_head.bias)
    _, _, values = model(roll.prompt_ids, roll.prompt_mask, roll.response_ids, rmask)
    assert values[0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # padding positions carry no value


def test_adaptive_kl_controller_tracks_the_target() -> None:
    beta = AdaptiveKL(0.1, target=6.0, horizon=100)
    beta.update(12.0, 10)  # KL twice the target: error clipped to +0.2
    assert abs(beta.value - 0.1 * 1.02) < 1e-12
    beta.update(3.0, 10)  # half the target: error -0.2... clipped
    assert abs(beta.value - 0.1 * 1.02 * 0.98) < 1e-12
    fixed = AdaptiveKL(0.1, target=0.0, horizon=100)
    fixed.update(50.0, 10)
    assert fixed.value == 0.1


def test_ppo_cli(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from trainer.__main__ import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:4]) + "\n")
    rc = main(["ppo", "--model", str(tiny_policy_dir), "--out", str(tmp_path / "run"),
               "--prompts", str(prompts), "--reward-model", str(tiny_policy_dir), "--steps", "1",
               "--prompts-per-step", "4", "--max-new-tokens", "4", "--kl-estimator", "k3",
               "--target-kl", "6", "--no-progress"])  # fmt: skip
    assert rc == 0
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert row["kl_coef"] == 0.05 and (tmp_path / "run" / "metrics.json").exists()

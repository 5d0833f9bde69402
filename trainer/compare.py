"""`policy-compare`: a new policy against the current one on held-out prompts (the round's gate).

Both policies answer the same prompts; the reward model scores both. Reported: mean reward of
each, the KL of the new policy to the current one on its own samples (sum over response tokens
of log pi_new - log pi_current, the k1 estimator), mean response lengths, and the share of the
new policy's responses the reward model scores below the responses physicians flagged unsafe
(those of the same prompt where there are any, else all of them, by their mean score).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.cli import dataclass_from_namespace, dataclass_to_arguments
from trainer.config import GenerateConfig, SampleConfig


@dataclass
class CompareConfig(SampleConfig):
    """Which two policies, which prompts, which reward model and unsafe responses."""

    current: str = field(default="", metadata={"help": "The current (published) policy dir."})
    prompts: str = field(default="", metadata={"help": "Held-out prompts: JSONL with 'prompt'."})
    reward_model: str = field(default="", metadata={"help": "Reward model dir that scores both."})
    unsafe: str | None = field(
        default=None,
        metadata={"help": "JSONL of {prompt, response} physicians flagged unsafe (optional)."},
    )
    k: int = field(default=2, metadata={"help": "Responses per prompt from each policy."})
    max_prompts: int = field(default=64, metadata={"help": "Held-out prompts used at most."})


def _answer(path: str, prompts: list[str], config: CompareConfig) -> tuple[Any, Any, Any]:
    from trainer.policy import encode_prompts, load_policy, sample

    torch.manual_seed(config.seed)
    model, tok = load_policy(path)
    model.eval()
    ids, mask = encode_prompts(
        tok, prompts, chat_template=config.chat_template, max_tokens=config.max_prompt_tokens
    )
    roll = sample(
        model, tok, ids, mask, k=config.k, max_new_tokens=config.max_new_tokens,
        temperature=config.temperature, top_p=config.top_p,
    )  # fmt: skip
    return model, tok, roll


def _sequence_logps(model: Any, roll: Any) -> torch.Tensor:
    from trainer.policy import policy_forward

    with torch.no_grad():
        args = (roll.prompt_ids, roll.prompt_mask, roll.response_ids, roll.response_mask)
        logps = policy_forward(model, *args)[0]
    return (logps * roll.response_mask).sum(1)


def _unsafe_below(
    scorer: Any, rows: list[dict[str, str]], prompts: list[str], scores: torch.Tensor
) -> float | None:
    """Share of `scores` (for `prompts`, row by row) below the unsafe responses' mean score."""
    if not rows:
        return None
    unsafe = scorer([r["prompt"] for r in rows], [r["response"] for r in rows]).tolist()
    by_prompt: dict[str, list[float]] = {}
    for row, s in zip(rows, unsafe, strict=True):
        by_prompt.setdefault(row["prompt"], []).append(s)
    overall = sum(unsafe) / len(unsafe)
    below = 0
    for prompt, value in zip(prompts, scores.tolist(), strict=True):
        own = by_prompt.get(prompt)
        below += value < (sum(own) / len(own) if own else overall)
    return below / len(prompts)


def compare_policies(config: CompareConfig) -> dict[str, Any]:
    """The gate's measurements of `config.model` (new) against `config.current`."""
    from trainer.policy import decode_responses
    from trainer.rl import RewardModelScorer, read_prompts

    prompts = read_prompts(config.prompts)[: config.max_prompts]
    if not prompts:
        raise ValueError(f"{config.prompts}: no held-out prompts to compare the policies on")
    new_model, tok, new_roll = _answer(config.model, prompts, config)
    current_model, _, current_roll = _answer(config.current, prompts, config)
    kl = (_sequence_logps(new_model, new_roll) - _sequence_logps(current_model, new_roll)).mean()
    scorer = RewardModelScorer(config.reward_model)
    asked = [prompts[i] for i in new_roll.prompt_index.tolist()]
    new_scores = scorer(asked, decode_responses(tok, new_roll))
    current_scores = scorer(asked, decode_responses(tok, current_roll))
    unsafe_rows = []
    if config.unsafe and Path(config.unsafe).is_file():
        lines = Path(config.unsafe).read_text(encoding="utf-8").splitlines()
        unsafe_rows = [json.loads(line) for line in lines if line.strip()]
    metrics = {
        "prompts": len(prompts),
        "mean_reward_new": new_scores.mean().item(),
        "mean_reward_current": current_scores.mean().item(),
        "kl_new_to_current": kl.item(),
        "mean_length_new": new_roll.response_mask.sum(1).float().mean().item(),
        "mean_length_current": current_roll.response_mask.sum(1).float().mean().item(),
        "unsafe_responses": len(unsafe_rows),
        "share_below_unsafe": _unsafe_below(scorer, unsafe_rows, asked, new_scores),
    }
    if config.out:
        Path(config.out).mkdir(parents=True, exist_ok=True)
        (Path(config.out) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _run(args: argparse.Namespace) -> int:
    print(json.dumps(compare_policies(dataclass_from_namespace(CompareConfig, args))))
    return 0


def register(subparsers: Any) -> None:
    """Add `python -m trainer policy-compare` and `generate-scored`."""
    register_scored(subparsers)
    parser = subparsers.add_parser(
        "policy-compare", help="Gate: a new policy against the current one on held-out prompts."
    )
    dataclass_to_arguments(
        parser, CompareConfig, required=("model", "current", "prompts", "reward_model", "out")
    )
    parser.set_defaults(func=_run)


@dataclass
class ScoredGenerateConfig(GenerateConfig):
    """`generate`, then the reward model's score of every response (for the reward-hacking watch)."""

    reward_model: str = field(default="", metadata={"help": "Reward model dir that scores them."})
    scores_out: str = field(default="", metadata={"help": "JSONL: one list of scores a record."})


def generate_scored(config: ScoredGenerateConfig) -> list[list[float]]:
    """Generate K responses per prompt (as `generate`), score each with the reward model."""
    from trainer.generate import generate_responses
    from trainer.rl import RewardModelScorer, read_prompt_rows

    records = generate_responses(config, read_prompt_rows(config.prompts))
    scorer = RewardModelScorer(config.reward_model)
    prompts = [r.prompt for r in records for _ in r.responses]
    flat = scorer(prompts, [resp.text for r in records for resp in r.responses]).tolist()
    scores, start = [], 0
    for record in records:
        scores.append(flat[start : start + len(record.responses)])
        start += len(record.responses)
    if config.scores_out:
        Path(config.scores_out).write_text("".join(json.dumps(s) + "\n" for s in scores))
    return scores


def _run_scored(args: argparse.Namespace) -> int:
    scores = generate_scored(dataclass_from_namespace(ScoredGenerateConfig, args))
    print(f"generate-scored: {len(scores)} prompts scored")
    return 0


def register_scored(subparsers: Any) -> None:
    """Add `python -m trainer generate-scored`."""
    parser = subparsers.add_parser(
        "generate-scored",
        help="Generate K responses per prompt and score them with a reward model.",
    )
    dataclass_to_arguments(
        parser, ScoredGenerateConfig,
        required=("model", "out", "prompts", "reward_model", "scores_out"),
    )  # fmt: skip
    parser.set_defaults(func=_run_scored)

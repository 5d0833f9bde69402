"""DPO: optimise the policy directly on preference pairs (Rafailov et al. 2023), no reward model.

Reads the app's export (rankings expand to pairs with `ranking_to_pairwise`, ties dropped) or TRL
rows. The reference log-probs are computed once, before the first update, while the policy still
is the reference (TRL's `precompute_ref_log_probs`): no second model is kept in memory, with or
without LoRA.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trainer.config import DPOConfig
from trainer.data import read_records
from trainer.losses import dpo_loss
from trainer.policy import encode_prompts, encode_responses, policy_forward
from trainer.rl import TrainingDiverged, add_command, setup_policy
from trainer.schema import PairwiseRecord, RankingRecord, ranking_to_pairwise

Pair = tuple[str, str, str, float]  # (prompt, chosen, rejected, weight)


def read_pairs(path: str | Path) -> list[Pair]:
    """Preference pairs from an export (rankings and pairwise rows) or TRL rows; ties dropped."""
    pairs: list[Pair] = []
    for rec in read_records(path):
        rows = ranking_to_pairwise(rec) if isinstance(rec, RankingRecord) else [rec]
        pairs += [(r.prompt, r.chosen, r.rejected, r.weight)
                  for r in rows if isinstance(r, PairwiseRecord) and not r.tie]  # fmt: skip
    return pairs


def sequence_logps(model: Any, tok: Any, pairs: list[Pair], config: DPOConfig) -> torch.Tensor:
    """Summed response log-probs, chosen rows then rejected rows: shape (2 * len(pairs),)."""
    prompts = [p[0] for p in pairs] * 2
    responses = [p[1] for p in pairs] + [p[2] for p in pairs]
    device = next(model.parameters()).device
    ids, mask = encode_prompts(tok, prompts, chat_template=config.chat_template,
                               max_tokens=config.max_prompt_tokens)  # fmt: skip
    budget = max(1, config.max_length - ids.size(1))
    rids, rmask = encode_responses(tok, responses, max_tokens=budget)
    args = (ids.to(device), mask.to(device), rids.to(device), rmask.to(device))
    return policy_forward(model, *args)[0].sum(1)


def train_dpo(config: DPOConfig, pairs: list[Pair] | None = None) -> dict[str, Any]:
    """Fine-tune the policy with the sigmoid DPO loss; save it and return the run's metrics."""
    pairs = pairs or read_pairs(config.data)
    run = setup_policy(config, with_ref=False)
    acc, model, tok, opt = run.accelerator, run.model, run.tokenizer, run.optimizer
    log, rng = run.metrics_log(config.out), random.Random(config.seed)  # same order everywhere
    size = config.batch_size
    # Reference log-probs, once, before any update (the policy is still the reference here).
    with torch.no_grad(), acc.autocast():
        ref = torch.cat([sequence_logps(model, tok, pairs[i : i + size], config)
                         .view(2, -1) for i in range(0, len(pairs), size)], 1)  # fmt: skip
    step = 0
    n_batches = -(-len(run.shard(pairs)) // size)
    bar = tqdm(total=config.epochs * n_batches, desc="dpo", disable=not config.progress)
    for _ in range(config.epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        order = run.shard(order)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            with acc.autocast():
                logps = sequence_logps(model, tok, [pairs[i] for i in idx], config).view(2, -1)
                losses, chosen_r, rejected_r = dpo_loss(
                    logps[0], logps[1], ref[0, idx], ref[1, idx], config.beta,
                    config.label_smoothing,
                )  # fmt: skip
                weights = torch.tensor([pairs[i][3] for i in idx], device=losses.device)
                loss = (losses * weights).sum() / weights.sum().clamp_min(1e-12)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite DPO loss at step {step}; stopping before saving"
                )
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            margin = chosen_r - rejected_r
            log.log(step, {
                "loss": loss.item(), "reward_margin": margin.mean().item(),
                "reward_accuracy": (margin > 0).float().mean().item(),
                "chosen_reward": chosen_r.mean().item(), "rejected_reward": rejected_r.mean().item(),
                "chosen_logps": logps[0].mean().item(), "rejected_logps": logps[1].mean().item(),
            })  # fmt: skip
            step += 1
            bar.update()
    bar.close()
    path = run.save(config)
    return log.finish(method="dpo", pairs=len(pairs), policy_path=str(path) if path else None)


def register(subparsers: Any) -> None:
    """Add `python -m trainer dpo`."""
    add_command(
        subparsers,
        name="dpo",
        help_text="Direct preference optimisation on pairs.",
        config_cls=DPOConfig,
        train=train_dpo,
        required=("model", "out", "data"),
        report="reward_margin",
    )

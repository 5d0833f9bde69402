"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024). The default method.

Per step: (1) sample k responses for each of a batch of prompts; (2) score them, with a penalty
for responses that never end; (3) subtract beta * the sequence KL to the frozen reference;
(4) advantage = reward minus the mean reward of the prompt's other k-1 responses; (5) a
REINFORCE update on whole sequences (with PPO-style ratio clipping when epochs > 1).
No value model: half the memory of PPO and one forward pass fewer.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trainer.config import RLOOConfig
from trainer.losses import masked_mean, rloo_advantages, rloo_policy_loss
from trainer.policy import decode_responses, encode_prompts, policy_forward, sample
from trainer.rl import (
    PhaseTimer,
    RewardFn,
    add_command,
    as_reward_fn,
    check_health,
    chunks,
    read_prompts,
    reference_logprobs,
    score,
    setup_policy,
)


def train_rloo(
    config: RLOOConfig,
    prompts: list[str] | None = None,
    reward: str | Path | RewardFn | None = None,
) -> dict[str, Any]:
    """Optimise the policy with RLOO against `reward`; save it and return the run's metrics."""
    prompts = prompts or read_prompts(config.prompts)
    run = setup_policy(config)
    acc, model, tok, ref, opt = run.accelerator, run.model, run.tokenizer, run.ref, run.optimizer
    reward_fn = as_reward_fn(reward or config.reward_model, acc.device)
    # Different prompts on each process under `accelerate launch`.
    log = run.metrics_log(config.out)
    rng = random.Random(config.seed + acc.process_index)
    k = config.k
    timer = PhaseTimer(acc.device)
    for step in tqdm(range(config.steps), desc="rloo", disable=not config.progress):
        # 1. Rollout: k samples per prompt, grouped so rows [i*k, (i+1)*k) share a prompt.
        batch = rng.sample(prompts, min(config.prompts_per_step, len(prompts)))
        with timer("generate"):
            ids, mask = encode_prompts(
                tok, batch, chat_template=config.chat_template, max_tokens=config.max_prompt_tokens
            )
            with acc.autocast():
                roll = sample(
                    run.policy,
                    tok,
                    ids,
                    mask,
                    k=k,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    max_new_tokens=config.max_new_tokens,
                )
        rmask = roll.response_mask
        # 2. Score; a response that never ends is penalised so the policy cannot farm length.
        with timer("score"):
            texts = decode_responses(tok, roll)
            scores = score(reward_fn, [batch[i] for i in roll.prompt_index.tolist()], texts)
        scores = scores.to(acc.device) - config.missing_eos_penalty * (~roll.has_eos).float()
        # 3. Sequence-level KL penalty: sum over tokens of log pi - log ref (k1, as RLOO/TRL do).
        args = (roll.prompt_ids, roll.prompt_mask, roll.response_ids, rmask)
        with torch.no_grad(), acc.autocast():
            with timer("old_forward"):
                old_logps, entropy, _ = policy_forward(
                    model, *args, temperature=config.temperature, with_entropy=True
                )
            with timer("ref_forward"):
                ref_logps = reference_logprobs(run.policy, ref, args, config.temperature)
        kl = ((old_logps - ref_logps) * rmask).sum(1)
        rewards = scores - config.kl_coef * kl
        # 4. Leave-one-out baseline.
        adv = rloo_advantages(rewards, k, normalize=config.normalize_advantages)
        # 5. REINFORCE update on whole-sequence log-probs, chunked to bound activation memory.
        old_seq = old_logps.sum(1)
        stats = []
        pieces = chunks(len(adv), config.forward_batch_size)
        for _ in range(config.epochs):
            for rows in pieces:
                # Under DDP, gradients are averaged across processes once, on the last chunk.
                sync = nullcontext() if rows is pieces[-1] else acc.no_sync(model)
                with sync:
                    with timer("forward"), acc.autocast():
                        logps, _, _ = policy_forward(
                            model, *(a[rows] for a in args), temperature=config.temperature
                        )
                        loss, clipfrac = rloo_policy_loss(
                            logps.sum(1), old_seq[rows], adv[rows], config.clip
                        )
                        ratio = (logps.sum(1) - old_seq[rows]).exp().mean()
                    with timer("backward"):
                        acc.backward(loss * (rows.stop - rows.start) / len(adv))
                stats.append((loss.item(), clipfrac.item(), ratio.item()))
            with timer("optimizer"):
                acc.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
        loss_, clipfrac_, ratio_ = (sum(s[i] for s in stats) / len(stats) for i in range(3))
        metrics = {
            "loss": loss_,
            "kl": kl.mean().item(),
            "reward_mean": scores.mean().item(),
            "reward_std": scores.std().item(),
            "rlhf_reward": rewards.mean().item(),
            "entropy": masked_mean(entropy, rmask).item(),
            "clipfrac": clipfrac_,
            "ratio": ratio_,
            "response_length": rmask.sum(1).float().mean().item(),
            "no_eos_frac": (~roll.has_eos).float().mean().item(),
        }
        check_health(metrics, max_kl=config.max_kl, max_ratio=config.max_ratio)
        log.log(step, metrics | timer.take())
    path = run.save(config)
    return log.finish(method="rloo", policy_path=str(path) if path else None)


def register(subparsers: Any) -> None:
    """Add `python -m trainer rloo`."""
    add_command(
        subparsers,
        name="rloo",
        help_text="RLOO policy optimisation (the default method).",
        config_cls=RLOOConfig,
        train=train_rloo,
        required=("model", "out", "prompts", "reward_model"),
        report="reward_mean",
    )

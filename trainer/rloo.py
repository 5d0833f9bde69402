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
        pieces = chunks(len(rmask), config.forward_batch_size)
        with timer("ref_forward"), acc.autocast():
            ref_logps = reference_logprobs(run.policy, ref, args, config.temperature)
        # The policy's log-probs before the update ("old") are those of the update's first forward:
        # no weight has moved yet. So the first piece is forwarded once, keeping its graph for the
        # update (ratio exactly 1, as TRL's single-iteration RLOO); only the other pieces need a
        # forward without a graph. With one piece (the default) the policy is forwarded once.
        later = []
        for rows in pieces[1:]:
            with timer("old_forward"), torch.no_grad(), acc.autocast():
                later.append(policy_forward(model, *(a[rows] for a in args),
                                            temperature=config.temperature, with_entropy=True)[:2])  # fmt: skip
        # Under DDP, gradients are averaged across processes once, on the last piece; whether a
        # backward syncs is decided at its forward.
        first_sync = nullcontext() if len(pieces) == 1 else acc.no_sync(model)
        with first_sync, timer("forward"), acc.autocast():
            first_logps, first_entropy, _ = policy_forward(
                model, *(a[pieces[0]] for a in args), temperature=config.temperature,
                with_entropy=True,
            )  # fmt: skip
        old_logps = torch.cat([first_logps.detach(), *(lp for lp, _ in later)])
        entropy = torch.cat([first_entropy, *(e for _, e in later)])
        kl = ((old_logps - ref_logps) * rmask).sum(1)
        rewards = scores - config.kl_coef * kl
        # 4. Leave-one-out baseline.
        adv = rloo_advantages(rewards, k, normalize=config.normalize_advantages)
        # 5. REINFORCE update on whole-sequence log-probs, chunked to bound activation memory.
        old_seq = old_logps.sum(1)
        stats = []
        for epoch in range(config.epochs):
            for rows in pieces:
                sync = nullcontext() if rows is pieces[-1] else acc.no_sync(model)
                with sync:
                    with timer("forward"), acc.autocast():
                        if epoch == 0 and rows is pieces[0]:
                            logps = first_logps
                        else:
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

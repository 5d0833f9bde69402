"""PPO with a per-token KL penalty, a value head and GAE (Ziegler et al. 2019, InstructGPT, TRL).

Per step: (1) rollout; (2) score, penalising responses that never end; (3) per-token KL to the
frozen reference and the score on the last real token; (4) GAE advantages, whitened; (5) several
epochs of clipped policy + clipped value updates over shuffled minibatches.
The value head is a linear layer on the policy's last hidden state (one trunk: no second model).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from trainer.config import PPOConfig
from trainer.losses import (
    gae_advantages,
    kl_per_token,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    ppo_token_rewards,
    ppo_value_loss,
)
from trainer.policy import decode_responses, encode_prompts, policy_forward, sample
from trainer.rl import (
    PhaseTimer,
    RewardFn,
    add_command,
    as_reward_fn,
    check_health,
    read_prompts,
    reference_logprobs,
    score,
    setup_policy,
)


class PolicyWithValue(nn.Module):
    """The policy plus a scalar value head on its final hidden state, trained as one module."""

    def __init__(self, policy: Any):
        super().__init__()
        self.policy = policy
        self.value_head = nn.Linear(policy.config.hidden_size, 1)
        # Zero init: V = 0 at the start, so the first advantages are the (KL-shaped) returns.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, *args: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False):  # type: ignore[no-untyped-def]
        """(log-probs, entropies or None, values), each (B, R) over the response tokens."""
        logps, entropy, out = policy_forward(
            self.policy, *args, temperature=temperature, with_entropy=with_entropy,
            output_hidden_states=True,
        )  # fmt: skip
        p, r = args[0].size(1), args[2].size(1)
        hidden = out.hidden_states[-1][:, p - 1 : p - 1 + r]  # the state before each token
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return logps, entropy, values * args[3]


class AdaptiveKL:
    """Ziegler et al.'s controller: nudge beta so the sequence KL tracks a target."""

    def __init__(self, init: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_samples: int) -> None:
        """Scale beta by 1 + clip(KL/target - 1, ±0.2) * n / horizon."""
        if self.target <= 0:
            return
        error = max(-0.2, min(0.2, current_kl / self.target - 1))
        self.value *= 1 + error * n_samples / self.horizon


def train_ppo(
    config: PPOConfig,
    prompts: list[str] | None = None,
    reward: str | Path | RewardFn | None = None,
) -> dict[str, Any]:
    """Optimise the policy with PPO against `reward`; save it and return the run's metrics."""
    prompts = prompts or read_prompts(config.prompts)
    run = setup_policy(config, wrap=PolicyWithValue)
    acc, model, tok, opt = run.accelerator, run.model, run.tokenizer, run.optimizer
    reward_fn = as_reward_fn(reward or config.reward_model, acc.device)
    # Different prompts on each process under `accelerate launch`.
    log = run.metrics_log(config.out)
    rng = random.Random(config.seed + acc.process_index)
    beta = AdaptiveKL(config.kl_coef, config.target_kl, config.kl_horizon)
    timer = PhaseTimer(acc.device)
    for step in tqdm(range(config.steps), desc="ppo", disable=not config.progress):
        # 1. Rollout: one response per prompt.
        batch = rng.sample(prompts, min(config.prompts_per_step, len(prompts)))
        with timer("generate"):
            ids, mask = encode_prompts(
                tok, batch, chat_template=config.chat_template, max_tokens=config.max_prompt_tokens
            )
            with acc.autocast():
                roll = sample(
                    run.policy, tok, ids, mask, temperature=config.temperature, top_p=config.top_p,
                    max_new_tokens=config.max_new_tokens,
                )  # fmt: skip
        rmask = roll.response_mask
        args = (roll.prompt_ids, roll.prompt_mask, roll.response_ids, rmask)
        # 2. Score at the end of the response; never-ending responses are penalised.
        with timer("score"):
            scores = score(reward_fn, [batch[i] for i in roll.prompt_index.tolist()],
                           decode_responses(tok, roll)).to(acc.device)  # fmt: skip
        scores = scores - config.missing_eos_penalty * (~roll.has_eos).float()
        with timer("ref_forward"), acc.autocast():
            ref_logps = reference_logprobs(run.policy, run.ref, args, config.temperature)
        # The first epoch's first minibatch is forwarded once: before any update, its log-probs and
        # values are the old ones, so its graph serves that minibatch's update. Only the rest of
        # the rollout needs a forward without a graph. The epoch's order is drawn first for that.
        n, size = len(batch), max(1, len(batch) // config.minibatches)
        order = torch.randperm(n, device=acc.device)
        first, rest = order[:size], order[size:]
        old_logps = torch.zeros(rmask.shape, device=acc.device)
        entropy, old_values = torch.zeros_like(old_logps), torch.zeros_like(old_logps)
        if len(rest):
            with timer("old_forward"), torch.no_grad(), acc.autocast():
                lp, ent, val = model(
                    *(a[rest] for a in args), temperature=config.temperature, with_entropy=True
                )
            old_logps[rest], entropy[rest], old_values[rest] = lp.float(), ent, val.float()
        with timer("forward"), acc.autocast():
            first_out = model(*(a[first] for a in args), temperature=config.temperature,
                              with_entropy=True)  # fmt: skip
        old_logps[first] = first_out[0].detach().float()
        entropy[first] = first_out[1]
        old_values[first] = first_out[2].detach().float()
        # 3. Per-token KL penalty, score on the last real token (see ppo_token_rewards).
        kl = kl_per_token(old_logps, ref_logps, config.kl_estimator) * rmask
        rewards = ppo_token_rewards(scores, kl, rmask, beta.value)
        if config.whiten_rewards:
            rewards = masked_whiten(rewards, rmask, shift_mean=False) * rmask
        # 4. GAE, then whitened advantages (TRL, OpenAI lm-human-preferences).
        advantages, returns = gae_advantages(rewards, old_values, rmask, config.gamma, config.lam)
        advantages = masked_whiten(advantages, rmask) * rmask
        # 5. Epochs of minibatch updates on the frozen rollout.
        stats: list[list[float]] = []
        for epoch in range(config.epochs):
            if epoch:
                order = torch.randperm(n, device=acc.device)
            for start in range(0, n, size):
                mb = order[start : start + size]
                with timer("forward"), acc.autocast():
                    if epoch == 0 and start == 0:
                        logps, _, values = first_out
                    else:
                        logps, _, values = model(
                            *(a[mb] for a in args), temperature=config.temperature
                        )
                    pg_loss, clipfrac, ratio = ppo_policy_loss(
                        logps, old_logps[mb], advantages[mb], rmask[mb], config.clip
                    )
                    vf_loss, vf_clipfrac = ppo_value_loss(
                        values, old_values[mb], returns[mb], rmask[mb], config.value_clip
                    )
                    loss = pg_loss + config.vf_coef * vf_loss
                with timer("backward"):
                    acc.backward(loss)
                with timer("optimizer"):
                    acc.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                approx_kl = 0.5 * masked_mean((logps.detach() - old_logps[mb]) ** 2, rmask[mb])
                stats.append([t.item() for t in (loss, pg_loss, vf_loss, clipfrac, vf_clipfrac,
                                                 ratio, approx_kl)])  # fmt: skip
        means = [sum(col) / len(col) for col in zip(*stats, strict=True)]
        seq_kl = kl.sum(1).mean().item()
        metrics = dict(zip(("loss", "pg_loss", "vf_loss", "clipfrac", "vf_clipfrac", "ratio",
                            "approx_kl"), means, strict=True))  # fmt: skip
        metrics |= {
            "kl": seq_kl, "kl_coef": beta.value, "reward_mean": scores.mean().item(),
            "reward_std": scores.std().item(), "rlhf_reward": rewards.sum(1).mean().item(),
            "entropy": masked_mean(entropy, rmask).item(),
            "response_length": rmask.sum(1).float().mean().item(),
            "no_eos_frac": (~roll.has_eos).float().mean().item(),
        }  # fmt: skip
        check_health(metrics, max_kl=config.max_kl, max_ratio=config.max_ratio)
        beta.update(seq_kl, n)
        log.log(step, metrics | timer.take())
    path = run.save(config)
    return log.finish(method="ppo", policy_path=str(path) if path else None)


def register(subparsers: Any) -> None:
    """Add `python -m trainer ppo`."""
    add_command(
        subparsers,
        name="ppo",
        help_text="PPO with a KL penalty, value head and GAE.",
        config_cls=PPOConfig,
        train=train_ppo,
        required=("model", "out", "prompts", "reward_model"),
        report="reward_mean",
    )

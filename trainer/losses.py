"""Loss and advantage maths: small pure functions on tensors, tested against hand-computed values.

Each section belongs to one trainer; the formulas follow the published papers and match Hugging Face
TRL's implementation on the same tensors.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812

# --- reward model ---
# Bradley-Terry: P(a > b) = sigmoid(r_a - r_b). InstructGPT trains a K-way ranking as all its
# implied pairs at once; TRL adds an optional margin and a reward-centering term (Eisenstein et
# al. 2023, eq. 2). Every function takes per-pair tensors so pairs and K-way share one code path.


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def pairwise_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    center_coef: float | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley-Terry loss -logsigmoid(r_c - r_r - m), plus c * mean((r_c + r_r)^2) if centering."""
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    loss = _weighted_mean(-F.logsigmoid(diff), weights)
    if center_coef is not None:
        loss = loss + center_coef * _weighted_mean((chosen + rejected) ** 2, weights)
    return loss


def tie_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per-pair loss pulling two tied rewards together: BT cross-entropy with target 1/2."""
    # Minimised (at log 2) when the rewards are equal; its gradient is sigmoid(d) - 1/2.
    diff = first - second
    return -0.5 * (F.logsigmoid(diff) + F.logsigmoid(-diff))


def ranking_pairs_loss(
    rewards: torch.Tensor,
    better: torch.Tensor,
    worse: torch.Tensor,
    *,
    tie: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    center_coef: float | None = None,
) -> torch.Tensor:
    """Loss over pairs indexing one reward per encoded response (each response scored once)."""
    chosen, rejected = rewards[better], rewards[worse]
    diff = chosen - rejected
    if margin is not None:
        diff = diff - margin
    per_pair = -F.logsigmoid(diff)
    if tie is not None:
        per_pair = torch.where(tie, tie_loss(chosen, rejected), per_pair)
    loss = _weighted_mean(per_pair, weights)
    if center_coef is not None:
        loss = loss + center_coef * _weighted_mean((chosen + rejected) ** 2, weights)
    return loss


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Share of pairs where the chosen reward is strictly higher (TRL's definition)."""
    return (chosen > rejected).float().mean()


# --- policy optimisation ---
# Shapes: (batch, response_len) per-token tensors with a 0/1 `mask` that covers the response up to
# and including its EOS token; sequence tensors are (batch,). Log-probs are computed in float32
# because bf16 log_softmax loses the small differences that PPO ratios and KL live on.

KLEstimator = Literal["k1", "k2", "k3"]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under `logits` (..., vocab), gathered per position: log_softmax then gather."""
    logits = logits.float()
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of the softmax of `logits` (..., vocab), per position."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`)."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp_min(1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp_min(1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `values` where `mask` is 1, with Bessel's correction by default."""
    var = masked_mean((values - masked_mean(values, mask)) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError("need at least two unmasked values to whiten; use a larger batch")
        var = var * n / (n - 1)
    return var


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True
) -> torch.Tensor:
    """(values - mean) / std over the masked entries; `shift_mean=False` keeps the mean."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_per_token(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator = "k1"
) -> torch.Tensor:
    """Per-token estimate of KL(policy || ref) from samples of the policy (Schulman's k1/k2/k3)."""
    # log r = log ref - log pi on a token sampled from pi; k1 = -log r is unbiased but can be
    # negative, k3 = (r - 1) - log r is unbiased and never negative, k2 = (log r)^2 / 2 is biased.
    log_r = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r**2
    if estimator == "k3":
        return log_r.exp() - 1 - log_r
    raise ValueError(f"unknown KL estimator {estimator!r}; use k1, k2 or k3")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a right-padded response mask (0 for an empty row)."""
    return (mask.long().sum(-1) - 1).clamp_min(0)


def ppo_token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL on every response token, plus the score on the last one."""
    # The score goes on the last real token: the EOS when the response ended, else the final
    # token at the length limit. TRL's PPOTrainer puts it one position later, on the first pad
    # (trl#3750). That position is no action the policy took (its log-prob is masked out), so the
    # score only reaches the EOS action through the value estimate of a padding state, discounted
    # by gamma*lam. OpenRLHF and the InstructGPT formulation credit the final action directly.
    rewards = -kl_coef * kl * mask
    rows = torch.arange(scores.size(0), device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a response: (advantages, returns), zero off the mask."""
    # Zeroing rewards and values past the end makes V(s_T) = 0 at the terminal state, so the same
    # backward recursion TRL uses needs no special case for ragged lengths.
    rewards, values = rewards * mask, values * mask
    last = torch.zeros_like(rewards[:, 0])
    out = []
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        out.append(last)
    advantages = torch.stack(out[::-1], dim=1) * mask
    return advantages, (advantages + values) * mask


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clipped surrogate loss (Schulman et al. 2017), its clip fraction and the mean ratio."""
    ratio = (logprobs - old_logprobs).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    return loss, clipfrac.detach(), masked_mean(ratio, mask).detach()


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * max((v - R)^2, (clip(v) - R)^2) and its clip fraction."""
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    unclipped_sq = (values - returns) ** 2
    clipped_sq = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_sq, clipped_sq), mask)
    return loss, masked_mean((clipped_sq > unclipped_sq).float(), mask).detach()


def rloo_advantages(rewards: torch.Tensor, k: int, normalize: bool = False) -> torch.Tensor:
    """r_i minus the mean of the other k-1 rewards of the same prompt (samples grouped by prompt)."""
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt for a leave-one-out baseline")
    grouped = rewards.view(-1, k)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (k - 1)
    advantages = (grouped - baseline).view(-1)
    if normalize:  # TRL's `normalize_advantages`: batch z-score with a 1e-4 floor on the std
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-4)
    return advantages


def rloo_policy_loss(
    seq_logprobs: torch.Tensor,
    old_seq_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE on whole sequences, with an optional PPO-style clip of the sequence ratio."""
    ratio = (seq_logprobs - old_seq_logprobs).exp()
    unclipped = ratio * advantages
    if clip is None:
        return -unclipped.mean(), torch.zeros((), device=ratio.device)
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    clipfrac = (clipped < unclipped).float().mean()
    return -torch.min(unclipped, clipped).mean(), clipfrac.detach()


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss per pair (Rafailov et al. 2023) and the implicit chosen/rejected rewards."""
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    logits = beta * (chosen_ratio - rejected_ratio)
    # label_smoothing > 0 is the conservative DPO of Mitchell (2023): assume that share of flips.
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()

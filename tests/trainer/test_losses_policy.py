"""Policy-optimisation maths: hand-computed values, pitfalls, and parity with TRL 1.16.0.

Where TRL 1.16 ships a function (selective_log_softmax, entropy_from_logits, first_true_indices)
we call it. Where the formula lives inline in a trainer we transcribe TRL's lines into `trl_*`
helpers below, citing the file, and compare on identical tensors within 1e-6. TRL 1.16 dropped
its PPOTrainer; the PPO formulas (masked_whiten, k1/k3, GAE, clipped losses) are transcribed from
trl/experimental/ppo/ppo_trainer.py (huggingface/trl @ 0062ee10a9bc, the last version with PPO).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from trainer.losses import (
    dpo_loss,
    entropy_from_logits,
    gae_advantages,
    kl_per_token,
    last_token_index,
    masked_mean,
    masked_var,
    masked_whiten,
    ppo_policy_loss,
    ppo_token_rewards,
    ppo_value_loss,
    rloo_advantages,
    rloo_policy_loss,
    token_logprobs,
)

ATOL = 1e-6


def close(a: torch.Tensor, b: torch.Tensor | float, atol: float = ATOL) -> bool:
    return torch.allclose(torch.as_tensor(a).double(), torch.as_tensor(b).double(), atol=atol)


# ---------------------------------------------------------------- hand-computed values


def test_token_logprobs_and_entropy_by_hand() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (1/4, 3/4)
    assert close(token_logprobs(logits, torch.tensor([[1]])), math.log(0.75))
    assert close(token_logprobs(logits, torch.tensor([[0]])), math.log(0.25))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert close(entropy_from_logits(logits), h)


def test_masked_mean_var_whiten_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    assert close(masked_mean(x, m), 2.0)
    assert close(masked_var(x, m), 1.0)  # unbiased: ((1)^2 + 0 + 1) / 2
    assert close(masked_var(x, m, unbiased=False), 2 / 3)
    w = masked_whiten(x, m)
    assert close(w[0, :3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6)
    assert close(masked_whiten(x, m, shift_mean=False)[0, :3], torch.tensor([1.0, 2.0, 3.0]))


def test_kl_estimators_by_hand() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    log_r = math.log(0.5)  # ref / pi
    assert close(kl_per_token(logp, ref, "k1"), -log_r)
    assert close(kl_per_token(logp, ref, "k2"), 0.5 * log_r**2)
    assert close(kl_per_token(logp, ref, "k3"), (0.5 - 1) - log_r)
    assert (kl_per_token(torch.randn(100), torch.randn(100), "k3") >= 0).all()
    with pytest.raises(ValueError, match="unknown KL"):
        kl_per_token(logp, ref, "k9")  # type: ignore[arg-type]


def test_kl_estimators_are_unbiased_on_samples() -> None:
    # Sample tokens from pi; the mean of k1 and k3 must approach the exact KL(pi || ref).
    torch.manual_seed(0)
    pi, ref = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    exact = (pi * (pi / ref).log()).sum()
    tokens = torch.multinomial(pi, 200_000, replacement=True)
    lp, lr = pi.log()[tokens], ref.log()[tokens]
    assert abs(kl_per_token(lp, lr, "k1").mean() - exact) < 0.01
    assert abs(kl_per_token(lp, lr, "k3").mean() - exact) < 0.01


def test_gae_by_hand() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the 4th position is padding: its reward/value are ignored
    gamma, lam = 0.9, 0.8
    d2 = 1.0 - 0.5  # terminal: no next value
    d1 = 0.0 + gamma * 0.5 - 0.5
    d0 = 0.0 + gamma * 0.5 - 0.5
    a2, a1 = d2, d1 + gamma * lam * d2
    a0 = d0 + gamma * lam * a1
    adv, ret = gae_advantages(rewards, values, mask, gamma, lam)
    assert close(adv, torch.tensor([[a0, a1, a2, 0.0]]))
    assert close(ret, torch.tensor([[a0 + 0.5, a1 + 0.5, a2 + 0.5, 0.0]]))


def test_gae_with_gamma_lam_one_is_reward_to_go_minus_value() -> None:
    rewards, values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, -1.0, 2.0]])
    adv, ret = gae_advantages(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    assert close(ret, torch.tensor([[6.0, 5.0, 3.0]]))
    assert close(adv, ret - values)


def test_ppo_policy_loss_by_hand() -> None:
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    loss, clipfrac, ratio = ppo_policy_loss(new, old, adv, torch.ones(1, 3), clip=0.2)
    # per token max(-A r, -A clip(r)): 1.5 -> -1.2 (clipped), 0.5 -> 0.8 (clipped), 1.1 -> -2.2
    assert close(loss, (-1.2 + 0.8 - 2.2) / 3)
    assert close(clipfrac, 2 / 3)
    assert close(ratio, (1.5 + 0.5 + 1.1) / 3)


def test_ppo_value_loss_by_hand() -> None:
    v, old, ret = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    loss, clipfrac = ppo_value_loss(v, old, ret, torch.ones(1, 2), clip=0.5)
    # token 0: max((2-0)^2, (1.5-0)^2) = 4; token 1: max(1, 1) = 1
    assert close(loss, 0.5 * (4 + 1) / 2)
    assert close(clipfrac, 0.0)


def test_rloo_advantages_by_hand() -> None:
    r = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])  # two prompts, k = 3
    adv = rloo_advantages(r, 3)
    assert close(adv, torch.tensor([1 - 4.0, 2 - 3.5, 6 - 1.5, 0 - 1.5, 0 - 1.5, 3 - 0.0]))
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_advantages(r, 1)


def test_rloo_policy_loss_by_hand() -> None:
    adv = torch.tensor([1.0, -1.0])
    new, old = torch.log(torch.tensor([2.0, 0.5])), torch.zeros(2)
    loss, clipfrac = rloo_policy_loss(new, old, adv, clip=0.2)
    assert close(loss, -(1.2 * 1.0 + 0.8 * -1.0) / 2)
    assert close(clipfrac, 1.0)
    loss_unclipped, _ = rloo_policy_loss(new, old, adv, clip=None)
    assert close(loss_unclipped, -(2.0 - 0.5) / 2)


def test_dpo_loss_by_hand() -> None:
    losses, rc, rr = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5
    )
    logits = 0.5 * ((-1 + 2) - (-3 + 2))  # = 1
    assert close(losses, -math.log(1 / (1 + math.exp(-logits))))
    assert close(rc, 0.5) and close(rr, -0.5)
    smooth, _, _ = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]),
        0.5, label_smoothing=0.1,
    )  # fmt: skip
    assert close(
        smooth, -0.9 * F.logsigmoid(torch.tensor(1.0)) - 0.1 * F.logsigmoid(torch.tensor(-1.0))
    )


# ---------------------------------------------------------------- pitfalls


def test_first_step_ratio_is_exactly_one_and_nothing_clips() -> None:
    torch.manual_seed(0)
    logp = torch.randn(4, 6)
    adv, mask = torch.randn(4, 6), torch.ones(4, 6)
    _, clipfrac, ratio = ppo_policy_loss(logp, logp.clone(), adv, mask, clip=0.2)
    assert ratio.item() == 1.0 and clipfrac.item() == 0.0
    _, clipfrac_seq = rloo_policy_loss(logp.sum(1), logp.sum(1).clone(), adv[:, 0], clip=0.2)
    assert clipfrac_seq.item() == 0.0


def test_score_sits_on_the_eos_token_and_at_the_length_limit() -> None:
    # Row 0 ends with EOS at index 2; row 1 never ends (hit the 4-token limit).
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    kl = torch.full((2, 4), 0.5)
    rewards = ppo_token_rewards(torch.tensor([3.0, -1.0]), kl, mask, kl_coef=0.1)
    assert last_token_index(mask).tolist() == [2, 3]
    assert close(rewards, torch.tensor([[-0.05, -0.05, 2.95, 0.0], [-0.05, -0.05, -0.05, -1.05]]))


def test_trl_first_pad_placement_differs_from_ours_when_pad_differs_from_eos() -> None:
    """trl#3750: TRL puts the score one past the EOS (first pad) when pad != eos; we use the EOS."""
    eos, pad = 7, 0
    response = torch.tensor([[5, 6, eos, pad, pad]])
    # trl/experimental/utils.py first_true_indices, transcribed (importing trl.experimental costs
    # ~10 s here): the index of the first True, or the row length when there is none.
    bools = response == pad
    n = bools.size(-1)
    first_pad = torch.min(n * (~bools).long() + torch.arange(n), dim=-1).values
    seq_len = first_pad - 1  # TRL: index of the last non-pad token
    trl_end = torch.where(seq_len + 1 < response.size(1), seq_len + 1, seq_len)
    ours = last_token_index(torch.tensor([[1, 1, 1, 0, 0]]))
    assert trl_end.item() == 3  # a padding position: no action the policy took
    assert ours.item() == 2  # the EOS token itself


def test_whitening_refuses_a_single_token() -> None:
    with pytest.raises(ValueError, match="at least two"):
        masked_var(torch.tensor([[1.0, 2.0]]), torch.tensor([[1, 0]]))


# ---------------------------------------------------------------- parity with TRL 1.16.0


def test_logprobs_and_entropy_match_trl() -> None:
    from trl.trainer.utils import entropy_from_logits as trl_entropy
    from trl.trainer.utils import selective_log_softmax

    torch.manual_seed(0)
    logits, tokens = torch.randn(3, 5, 50) * 3, torch.randint(0, 50, (3, 5))
    assert close(token_logprobs(logits, tokens), selective_log_softmax(logits, tokens))
    assert close(entropy_from_logits(logits), trl_entropy(logits))


def trl_masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True):  # type: ignore[no-untyped-def]
    """trl/experimental/ppo/ppo_trainer.py masked_mean/masked_var/masked_whiten, transcribed."""
    mean = (values * mask).sum() / mask.sum()
    var = ((values - mean) ** 2 * mask).sum() / mask.sum()
    var = var * mask.sum() / (mask.sum() - 1)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def test_masked_whiten_matches_trl() -> None:
    torch.manual_seed(1)
    x, m = torch.randn(4, 7), (torch.rand(4, 7) > 0.3).float()
    assert close(masked_whiten(x, m), trl_masked_whiten(x, m))
    assert close(masked_whiten(x, m, shift_mean=False), trl_masked_whiten(x, m, False))


def test_kl_estimators_match_trl() -> None:
    torch.manual_seed(2)
    logprobs, ref = -torch.rand(3, 6) * 4, -torch.rand(3, 6) * 4
    logr = ref - logprobs  # trl/experimental/ppo/ppo_trainer.py, "4. compute rewards"
    assert close(kl_per_token(logprobs, ref, "k1"), -logr)
    assert close(kl_per_token(logprobs, ref, "k3"), (logr.exp() - 1) - logr)
    # trl/trainer/grpo_trainer.py (1.16.0, _compute_loss): the same k3 written the other way round
    grpo_kl = torch.exp(ref - logprobs) - (ref - logprobs) - 1
    assert close(kl_per_token(logprobs, ref, "k3"), grpo_kl)


def trl_gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float):  # type: ignore[no-untyped-def]
    """trl/experimental/ppo/ppo_trainer.py "6. compute advantages and returns", transcribed."""
    lastgaelam, reversed_ = 0, []
    n = rewards.shape[1]
    for t in reversed(range(n)):
        nextvalues = values[:, t + 1] if t < n - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        reversed_.append(lastgaelam)
    advantages = torch.stack(reversed_[::-1], axis=1)
    return advantages, advantages + values


def test_gae_matches_trl_on_full_and_ragged_rows() -> None:
    torch.manual_seed(3)
    rewards, values = torch.randn(4, 6), torch.randn(4, 6)
    mask = torch.ones(4, 6)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    # TRL zeroes rewards and values past the end before its loop (masked_fill); same tensors here.
    adv, ret = gae_advantages(rewards, values, mask, 0.99, 0.95)
    trl_adv, trl_ret = trl_gae(rewards * mask, values * mask, 0.99, 0.95)
    assert close(adv, trl_adv * mask) and close(ret, trl_ret * mask)


def test_ppo_losses_match_trl() -> None:
    torch.manual_seed(4)
    new, old = -torch.rand(4, 6), -torch.rand(4, 6)
    adv, mask = torch.randn(4, 6), (torch.rand(4, 6) > 0.2).float()
    vpred, mb_values, mb_return = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6)
    # trl/experimental/ppo/ppo_trainer.py, the minibatch update, transcribed:
    ratio = torch.exp(new - old)
    pg_losses, pg_losses2 = -adv * ratio, -adv * torch.clamp(ratio, 0.8, 1.2)
    pg_loss = (torch.max(pg_losses, pg_losses2) * mask).sum() / mask.sum()
    pg_clipfrac = ((pg_losses2 > pg_losses).float() * mask).sum() / mask.sum()
    vpredclipped = torch.clamp(vpred, mb_values - 0.2, mb_values + 0.2)
    vf1, vf2 = torch.square(vpred - mb_return), torch.square(vpredclipped - mb_return)
    vf_loss = 0.5 * (torch.max(vf1, vf2) * mask).sum() / mask.sum()
    vf_clipfrac = ((vf2 > vf1).float() * mask).sum() / mask.sum()

    loss, clipfrac, _ = ppo_policy_loss(new, old, adv, mask, clip=0.2)
    vloss, vclipfrac = ppo_value_loss(vpred, mb_values, mb_return, mask, clip=0.2)
    assert close(loss, pg_loss) and close(clipfrac, pg_clipfrac)
    assert close(vloss, vf_loss) and close(vclipfrac, vf_clipfrac)


def test_rloo_advantages_and_loss_match_trl() -> None:
    from trl.trainer.utils import nanstd

    torch.manual_seed(5)
    k, rewards = 4, torch.randn(12)
    # trl/trainer/rloo_trainer.py (1.16.0, _generate_and_score_completions), transcribed:
    grouped = rewards.view(-1, k)
    counts = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    baselines = ((torch.nansum(grouped, dim=1, keepdim=True) - grouped) / (counts - 1)).view(-1)
    trl_adv = rewards - baselines
    assert close(rloo_advantages(rewards, k), trl_adv)
    trl_norm = (trl_adv - torch.nanmean(trl_adv)) / (nanstd(trl_adv) + 1e-4)
    assert close(rloo_advantages(rewards, k, normalize=True), trl_norm)
    # trl/trainer/rloo_trainer.py (_compute_loss): clipped sequence-level surrogate
    logps, old = -torch.rand(12) * 5, -torch.rand(12) * 5
    coef_1 = torch.exp(logps - old)
    coef_2 = torch.clamp(coef_1, 1 - 0.2, 1 + 0.2)
    trl_loss = -torch.min(coef_1 * trl_adv, coef_2 * trl_adv).mean()
    clipped = ((coef_1 < 0.8) & (trl_adv < 0)) | ((coef_1 > 1.2) & (trl_adv > 0))
    loss, clipfrac = rloo_policy_loss(logps, old, trl_adv, clip=0.2)
    assert close(loss, trl_loss) and close(clipfrac, clipped.float().mean())


def test_rloo_sequence_kl_matches_trl() -> None:
    torch.manual_seed(6)
    old, ref, mask = -torch.rand(4, 5), -torch.rand(4, 5), (torch.rand(4, 5) > 0.3).float()
    # trl/trainer/rloo_trainer.py: per_token_kl = old - ref; kl = (per_token_kl * mask).sum(-1)
    trl_kl = ((old - ref) * mask).sum(-1)
    assert close((kl_per_token(old, ref, "k1") * mask).sum(-1), trl_kl)


def test_dpo_loss_matches_trl() -> None:
    torch.manual_seed(7)
    pc, pr, rc, rr = (-torch.rand(8) * 20 for _ in range(4))
    beta = 0.1
    # trl/trainer/dpo_trainer.py (1.16.0, _compute_loss), f_divergence "reverse_kl", loss "sigmoid"
    delta = (pc - rc) - (pr - rr)
    trl_losses = -F.logsigmoid(beta * delta)
    losses, chosen_r, rejected_r = dpo_loss(pc, pr, rc, rr, beta)
    assert close(losses, trl_losses)
    assert close(chosen_r, beta * (pc - rc)) and close(rejected_r, beta * (pr - rr))

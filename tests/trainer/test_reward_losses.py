"""Reward losses against values computed by hand from the published formulas."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.losses import pairwise_accuracy, pairwise_loss, ranking_pairs_loss, tie_loss


def nll(d: float) -> float:
    """-log sigmoid(d), written out."""
    return math.log1p(math.exp(-d))


CHOSEN = torch.tensor([2.0, 0.5, -1.0])
REJECTED = torch.tensor([1.0, 1.5, -1.0])


def test_pairwise_loss_is_mean_negative_log_sigmoid_of_difference() -> None:
    expected = (nll(1.0) + nll(-1.0) + nll(0.0)) / 3
    assert pairwise_loss(CHOSEN, REJECTED).item() == pytest.approx(expected, abs=1e-6)


def test_margin_is_subtracted_from_the_difference() -> None:
    margin = torch.tensor([1.0, 0.0, 2.0])
    expected = (nll(0.0) + nll(-1.0) + nll(-2.0)) / 3
    got = pairwise_loss(CHOSEN, REJECTED, margin=margin).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_centering_adds_coefficient_times_mean_squared_sum() -> None:
    plain = (nll(1.0) + nll(-1.0) + nll(0.0)) / 3
    sums_sq = (3.0**2 + 2.0**2 + (-2.0) ** 2) / 3
    got = pairwise_loss(CHOSEN, REJECTED, center_coef=0.01).item()
    assert got == pytest.approx(plain + 0.01 * sums_sq, abs=1e-6)


def test_weights_make_a_weighted_mean() -> None:
    weights = torch.tensor([3.0, 1.0, 0.0])
    expected = (3 * nll(1.0) + nll(-1.0)) / 4
    got = pairwise_loss(CHOSEN, REJECTED, weights=weights).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_tie_loss_is_smallest_at_equal_rewards_and_symmetric() -> None:
    a = torch.tensor([0.0, 1.0, -1.0])
    b = torch.tensor([0.0, 0.0, 0.0])
    got = tie_loss(a, b)
    assert got[0].item() == pytest.approx(math.log(2), abs=1e-6)
    assert got[1].item() == pytest.approx(0.5 * (nll(1.0) + nll(-1.0)), abs=1e-6)
    assert got[1].item() == pytest.approx(got[2].item(), abs=1e-7)
    assert got[1] > got[0]


def test_tie_gradient_pulls_rewards_together() -> None:
    a = torch.tensor([2.0], requires_grad=True)
    b = torch.tensor([0.0], requires_grad=True)
    tie_loss(a, b).sum().backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.item() == pytest.approx(1 / (1 + math.exp(-2)) - 0.5, abs=1e-6)
    assert b.grad.item() == pytest.approx(-a.grad.item(), abs=1e-7)


def test_k_way_loss_reads_each_reward_once_and_averages_over_implied_pairs() -> None:
    # One 3-way ranking: response 0 > 2 > 1, rewards scored once per response.
    rewards = torch.tensor([1.0, -1.0, 0.5])
    better, worse = torch.tensor([0, 0, 2]), torch.tensor([2, 1, 1])
    expected = (nll(0.5) + nll(2.0) + nll(1.5)) / 3
    assert ranking_pairs_loss(rewards, better, worse).item() == pytest.approx(expected, abs=1e-6)
    same = pairwise_loss(rewards[better], rewards[worse])
    assert ranking_pairs_loss(rewards, better, worse).item() == pytest.approx(same.item(), abs=1e-7)


def test_k_way_loss_with_a_tie_margin_weights_and_centering() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0])
    better, worse = torch.tensor([0, 1]), torch.tensor([1, 2])
    tie = torch.tensor([False, True])
    margin = torch.tensor([0.5, 0.0])
    weights = torch.tensor([1.0, 2.0])
    got = ranking_pairs_loss(
        rewards, better, worse, tie=tie, margin=margin, weights=weights, center_coef=0.1
    )
    bt = (1 * nll(0.5) + 2 * math.log(2)) / 3
    centre = (1 * 1.0**2 + 2 * 0.0**2) / 3
    assert got.item() == pytest.approx(bt + 0.1 * centre, abs=1e-6)


def test_gradient_of_k_way_loss_flows_to_every_response() -> None:
    rewards = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    ranking_pairs_loss(rewards, torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])).backward()
    assert rewards.grad is not None
    # Best is pushed up by two pairs, worst down by two, the middle one's pushes cancel.
    assert rewards.grad.tolist() == pytest.approx([-1 / 3, 0.0, 1 / 3], abs=1e-6)


def test_accuracy_counts_strict_wins_only() -> None:
    assert pairwise_accuracy(CHOSEN, REJECTED).item() == pytest.approx(1 / 3)

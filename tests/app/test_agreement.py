"""Agreement, consensus and Bradley-Terry on hand-checked rankings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.agreement import (
    bradley_terry,
    consensus_ranks,
    mean_pairwise_agreement,
    pair_agreement,
)


def test_pair_agreement_is_kendall_style_with_ties():
    assert pair_agreement({1: 0, 2: 1, 3: 2}, {1: 0, 2: 1, 3: 2}) == 1.0
    assert pair_agreement({1: 0, 2: 1, 3: 2}, {1: 2, 2: 1, 3: 0}) == 0.0
    # (1,2) tie vs ordered disagrees; (1,3) and (2,3) agree.
    assert pair_agreement({1: 0, 2: 0, 3: 1}, {1: 0, 2: 1, 3: 2}) == pytest.approx(2 / 3)
    assert pair_agreement({1: 0}, {1: 0}) is None


def test_mean_agreement_needs_two_raters():
    assert mean_pairwise_agreement([{1: 0, 2: 1}]) is None
    three = [{1: 0, 2: 1}, {1: 0, 2: 1}, {1: 1, 2: 0}]
    assert mean_pairwise_agreement(three) == pytest.approx(1 / 3)


def test_consensus_is_dense_mean_rank_with_exact_ties():
    rankings = [{1: 0, 2: 1, 3: 2}, {1: 1, 2: 0, 3: 2}]
    assert consensus_ranks([1, 2, 3], rankings) == [0, 0, 1]
    assert consensus_ranks([1, 2], []) == [0, 0]


def test_bradley_terry_matches_the_closed_form_for_two_items():
    # With w wins to l losses (plus the prior) the MLE log-odds is log((w+p)/(l+p)).
    scores = bradley_terry([1, 2], [{1: 0, 2: 1}] * 3 + [{1: 1, 2: 0}], prior=0.5)
    assert scores[0] - scores[1] == pytest.approx(math.log(3.5 / 1.5), abs=1e-6)
    assert sum(scores) == pytest.approx(0.0, abs=1e-9)


def test_bradley_terry_stays_finite_when_one_always_wins():
    scores = bradley_terry([1, 2, 3], [{1: 0, 2: 1, 3: 2}] * 20)
    assert all(math.isfinite(s) for s in scores)
    assert scores[0] > scores[1] > scores[2]


rankings = st.lists(
    st.lists(st.integers(0, 3), min_size=3, max_size=3).map(
        lambda r: dict(zip([7, 8, 9], r, strict=True))
    ),
    min_size=1,
    max_size=6,
)


@given(rankings)
def test_agreement_is_a_fraction_and_bt_is_centred(rs):
    agreement = mean_pairwise_agreement(rs)
    assert agreement is None or 0.0 <= agreement <= 1.0
    scores = bradley_terry([7, 8, 9], rs)
    assert sum(scores) == pytest.approx(0.0, abs=1e-6)
    consensus = consensus_ranks([7, 8, 9], rs)
    assert sorted(set(consensus)) == list(range(len(set(consensus))))

"""Pooling raters' rankings of one comparison: consensus, agreement and Bradley-Terry scores.

Small pure functions over rankings keyed by response id ({response_id: rank}, 0 best, equal ranks
tie), so that raters who saw the responses in different orders are compared on the same items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from itertools import combinations

Ranking = dict[int, int]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def pair_agreement(a: Ranking, b: Ranking) -> float | None:
    """Share of item pairs both rankings order the same way (a tie only agrees with a tie).

    Kendall-style: 1 when identical, 0 when every pair is reversed. None when the two rankings
    share fewer than two items.
    """
    common = sorted(a.keys() & b.keys())
    pairs = list(combinations(common, 2))
    if not pairs:
        return None
    same = sum(_sign(a[i] - a[j]) == _sign(b[i] - b[j]) for i, j in pairs)
    return same / len(pairs)


def mean_pairwise_agreement(rankings: Sequence[Ranking]) -> float | None:
    """Mean agreement over every pair of raters; None with fewer than two rankings."""
    scores = [pair_agreement(a, b) for a, b in combinations(rankings, 2)]
    known = [s for s in scores if s is not None]
    return sum(known) / len(known) if known else None


def dense_ranks(values: Sequence[Fraction], *, lower_is_better: bool = True) -> list[int]:
    """Dense ranks from 0 of `values`; equal values share a rank."""
    distinct = sorted(set(values), reverse=not lower_is_better)
    index = {v: r for r, v in enumerate(distinct)}
    return [index[v] for v in values]


def consensus_ranks(items: Sequence[int], rankings: Sequence[Ranking]) -> list[int]:
    """A weak order over `items` by mean rank across raters (Borda); items nobody ranked tie last.

    Mean rank rather than BT order because it is exact (fractions, not floats), so ties are real.
    """
    worst = Fraction(len(items))
    means = []
    for item in items:
        ranks = [r[item] for r in rankings if item in r]
        means.append(Fraction(sum(ranks), len(ranks)) if ranks else worst)
    return dense_ranks(means)


def bradley_terry(
    items: Sequence[int],
    rankings: Sequence[Ranking],
    *,
    prior: float = 0.5,
    iterations: int = 200,
    tolerance: float = 1e-9,
) -> list[float]:
    """Bradley-Terry log-strengths of `items` from every pair the rankings imply (mean zero).

    Fitted with Hunter's MM updates. A tie counts as half a win each way, and `prior` pseudo-wins
    of each item over every other keep the scores finite when one response always wins.
    """
    n = len(items)
    if n == 0:
        return []
    pos = {item: i for i, item in enumerate(items)}
    wins = [[prior if i != j else 0.0 for j in range(n)] for i in range(n)]
    for ranking in rankings:
        ranked = [item for item in items if item in ranking]
        for x, y in combinations(ranked, 2):
            i, j = pos[x], pos[y]
            if ranking[x] == ranking[y]:
                wins[i][j] += 0.5
                wins[j][i] += 0.5
            elif ranking[x] < ranking[y]:
                wins[i][j] += 1.0
            else:
                wins[j][i] += 1.0
    strength = [1.0] * n
    for _ in range(iterations):
        updated = []
        for i in range(n):
            total_wins = sum(wins[i])
            denom = sum(
                (wins[i][j] + wins[j][i]) / (strength[i] + strength[j]) for j in range(n) if j != i
            )
            updated.append(total_wins / denom if denom > 0 else strength[i])
        # Normalise each step: BT strengths are identified only up to a common factor.
        geo = math.exp(sum(math.log(s) for s in updated) / n)
        updated = [s / geo for s in updated]
        done = max(abs(a - b) for a, b in zip(updated, strength, strict=True)) < tolerance
        strength = updated
        if done:
            break
    return [math.log(s) for s in strength]


def pair_relations(ranking: Ranking, items: Sequence[int]) -> dict[tuple[int, int], int]:
    """For each item pair (i < j by id) both ranked: -1 i better, 0 tie, 1 j better."""
    ranked = sorted(i for i in items if i in ranking)
    return {(i, j): _sign(ranking[i] - ranking[j]) for i, j in combinations(ranked, 2)}


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters' categorical labels on the same units; None if undefined."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    expected = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in labels)
    if expected == 1:
        return None  # both raters used one label throughout: chance explains everything
    return (observed - expected) / (1 - expected)


def ordinal_alpha(matrix: Sequence[Sequence[float | None]]) -> float | None:
    """Krippendorff's alpha, ordinal, of a raters x units matrix (None: not rated), by the package.

    None when no unit has two values or every value is the same (alpha is undefined then).
    """
    import krippendorff  # numpy underneath: loaded only when a quality page asks
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    if data.size == 0 or int((np.sum(~np.isnan(data), axis=0) >= 2).sum()) == 0:
        return None
    values = data[~np.isnan(data)]
    if len(set(values.tolist())) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))

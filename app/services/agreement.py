"""Pooling raters' rankings of one comparison: consensus, agreement and Bradley-Terry scores.

Small pure functions over rankings keyed by response id ({response_id: rank}, 0 best, equal ranks
tie), so that raters who saw the responses in different orders are compared on the same items.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from fractions import Fraction
from itertools import combinations, permutations

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


def cohen_kappa_from_counts(counts: Mapping[tuple[int, int], float]) -> float | None:
    """Cohen's kappa from {(label by a, label by b): units}; None if undefined."""
    n = sum(counts.values())
    if n == 0:
        return None
    observed = sum(v for (x, y), v in counts.items() if x == y) / n
    by_a: dict[int, float] = defaultdict(float)
    by_b: dict[int, float] = defaultdict(float)
    for (x, y), v in counts.items():
        by_a[x] += v
        by_b[y] += v
    expected = sum((by_a[c] / n) * (by_b[c] / n) for c in by_a.keys() | by_b.keys())
    if expected >= 1 - 1e-12:
        return None  # both raters used one label throughout: chance explains everything
    return (observed - expected) / (1 - expected)


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters' categorical labels on the same units; None if undefined."""
    if len(a) != len(b):
        return None
    return cohen_kappa_from_counts(Counter(zip(a, b, strict=True)))


def coincidences(matrix: Sequence[Sequence[float | None]]) -> dict[tuple[float, float], float]:
    """Krippendorff's coincidence matrix {(c, k): o_ck} of a raters x units matrix (None: not
    rated). Each unit with m values adds 1/(m-1) for every ordered pair of its values; it is a sum
    over units, which is what lets the quality tallies keep it."""
    o: dict[tuple[float, float], float] = defaultdict(float)
    for unit in zip(*matrix, strict=True):
        values = [v for v in unit if v is not None]
        for c, k in permutations(values, 2):
            o[(c, k)] += 1 / (len(values) - 1)
    return dict(o)


def ordinal_alpha_from_coincidences(o: Mapping[tuple[float, float], float]) -> float | None:
    """Krippendorff's alpha, ordinal, from a coincidence matrix: 1 - (n-1) D_o / D_e with the
    ordinal distance (sum of n_g from c to k, less half of n_c and n_k) squared, the formula the
    `krippendorff` package implements (the tests check the two agree).

    None when no unit has two values or every value is the same (alpha is undefined then).
    """
    marginal: dict[float, float] = defaultdict(float)
    for (c, _), v in o.items():
        marginal[c] += v
    values = sorted(v for v, n in marginal.items() if n > 1e-9)
    if len(values) < 2:
        return None
    n = sum(marginal.values())
    cumulative = [0.0]
    for v in values:
        cumulative.append(cumulative[-1] + marginal[v])
    observed = expected = 0.0
    for i, j in combinations(range(len(values)), 2):
        c, k = values[i], values[j]
        delta = (cumulative[j + 1] - cumulative[i] - (marginal[c] + marginal[k]) / 2) ** 2
        observed += (o.get((c, k), 0.0) + o.get((k, c), 0.0)) * delta
        expected += 2 * marginal[c] * marginal[k] * delta
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def ordinal_alpha(matrix: Sequence[Sequence[float | None]]) -> float | None:
    """Krippendorff's alpha, ordinal, of a raters x units matrix (None: not rated)."""
    return ordinal_alpha_from_coincidences(coincidences(matrix))

"""Data quality of a campaign and of each rater: every figure comes with the count it rests on.

Reads the live judgments (corrections replace what they correct) once and computes everything in
one pass. Built on app.services.agreement's pure functions; alpha comes from the `krippendorff`
package, with each (comparison, response) as a unit and the rank a rater gave it as the value.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, Judgment, User
from app.services.agreement import (
    Ranking,
    cohen_kappa,
    consensus_ranks,
    mean_pairwise_agreement,
    ordinal_alpha,
    pair_agreement,
    pair_relations,
)

MIN_KAPPA_OVERLAP = 5  # shared comparisons below which a kappa says more about luck than raters
MOST_DISAGREED = 15


@dataclass(frozen=True)
class Figure:
    """A number and how many observations it rests on (value None: too few to say)."""

    value: float | None
    n: int

    @classmethod
    def mean(cls, values: list[float]) -> Figure:
        """The mean of `values`, with its count."""
        return cls(sum(values) / len(values) if values else None, len(values))


@dataclass(frozen=True)
class Row:
    """One live judgment, as the quality figures need it."""

    id: int
    comparison_id: int
    rater_id: int
    shown: list[int]
    ranks: list[int] | None
    flagged: bool
    time_ms: int | None
    created_at: datetime

    def ranking(self) -> Ranking | None:
        """{response_id: rank}, or None for 'none acceptable'."""
        return None if self.ranks is None else dict(zip(self.shown, self.ranks, strict=True))


@dataclass
class RaterQuality:
    """One rater's figures."""

    rater_id: int
    judgments: int = 0
    median_seconds: Figure = Figure(None, 0)
    majority: Figure = Figure(None, 0)
    gold: Figure = Figure(None, 0)
    first_wins: Figure = Figure(None, 0)
    ties: Figure = Figure(None, 0)
    flags: Figure = Figure(None, 0)


@dataclass
class Quality:
    """A campaign's (or every campaign's) figures, per rater too, and where raters disagree."""

    judgments: int
    comparisons_rated: int
    alpha: Figure
    pairwise: Figure
    majority: Figure
    gold: Figure
    first_wins: Figure
    first_wins_chance: float | None
    ties: Figure
    flags: Figure
    median_seconds: Figure
    kappas: list[tuple[int, int, Figure]]
    raters: dict[int, RaterQuality]
    disagreed: list[tuple[int, Figure]]
    per_day: list[tuple[date, int, Figure]] = field(default_factory=list)


def load_rows(session: Session, *, campaign_id: int | None) -> list[Row]:
    """The live judgments of a campaign (or all), oldest first."""
    stmt = (
        select(Judgment.id, Judgment.comparison_id, Judgment.rater_id, Judgment.shown_order,
               Judgment.ranks, Judgment.flags, Judgment.time_spent_ms, Judgment.created_at)
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .where(Judgment.is_live())
        .order_by(Judgment.id)
    )  # fmt: skip
    if campaign_id is not None:
        stmt = stmt.where(Comparison.campaign_id == campaign_id)
    return [
        Row(
            jid,
            cid,
            rid,
            list(shown),
            None if ranks is None else list(ranks),
            any(flags.values()) if flags else False,
            ms,
            at,
        )  # fmt: skip
        for jid, cid, rid, shown, ranks, flags, ms, at in session.execute(stmt)
    ]


def _gold(
    session: Session, comparison_ids: Iterable[int]
) -> tuple[dict[int, Ranking], dict[int, list[int]]]:
    ids = list(set(comparison_ids))
    gold: dict[int, Ranking] = {}
    items: dict[int, list[int]] = defaultdict(list)
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        for cid, ranks in session.execute(
            select(Comparison.id, Comparison.gold_ranks).where(
                Comparison.id.in_(chunk), Comparison.is_gold
            )  # fmt: skip
        ):
            gold[cid] = dict(enumerate(ranks or []))  # by position; mapped to ids below
        for cid, rid in session.execute(
            select(ComparisonItem.comparison_id, ComparisonItem.response_id)
            .where(ComparisonItem.comparison_id.in_(chunk)).order_by(ComparisonItem.position)
        ):  # fmt: skip
            items[cid].append(rid)
    return {cid: {items[cid][p]: r for p, r in g.items()} for cid, g in gold.items()}, items


def _first_wins(row: Row) -> bool | None:
    """Whether the first response shown was the single best; None when no single best."""
    if row.ranks is None or row.ranks.count(0) != 1:
        return None
    return row.ranks[0] == 0


def _kappas(
    by_comparison: dict[int, dict[int, Ranking]], items: dict[int, list[int]]
) -> list[tuple[int, int, Figure]]:
    shared: dict[tuple[int, int], list[int]] = defaultdict(list)
    for cid, rankings in by_comparison.items():
        for a, b in combinations(sorted(rankings), 2):
            shared[(a, b)].append(cid)
    out = []
    for (a, b), cids in sorted(shared.items()):
        if len(cids) < MIN_KAPPA_OVERLAP:
            continue
        labels_a, labels_b = [], []
        for cid in cids:
            ra = pair_relations(by_comparison[cid][a], items[cid])
            rb = pair_relations(by_comparison[cid][b], items[cid])
            for pair in ra.keys() & rb.keys():
                labels_a.append(ra[pair])
                labels_b.append(rb[pair])
        out.append((a, b, Figure(cohen_kappa(labels_a, labels_b), len(cids))))
    return out


def _alpha(by_comparison: dict[int, dict[int, Ranking]], items: dict[int, list[int]]) -> Figure:
    raters = sorted({r for rankings in by_comparison.values() for r in rankings})
    units = [(cid, rid) for cid, rankings in by_comparison.items() if len(rankings) >= 2
             for rid in items[cid]]  # fmt: skip
    matrix = [
        [by_comparison[cid].get(rater, {}).get(rid) for cid, rid in units] for rater in raters
    ]
    n_comparisons = sum(len(r) >= 2 for r in by_comparison.values())
    return Figure(ordinal_alpha(matrix) if units else None, n_comparisons)


def compute_quality(session: Session, *, campaign_id: int | None) -> Quality:
    """Every quality figure of a campaign (None: all campaigns), per rater too."""
    rows = load_rows(session, campaign_id=campaign_id)
    gold, items = _gold(session, {r.comparison_id for r in rows})
    by_comparison: dict[int, dict[int, Ranking]] = defaultdict(dict)
    for row in rows:
        if (ranking := row.ranking()) is not None:
            by_comparison[row.comparison_id][row.rater_id] = ranking
    per_rater: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    per_day: dict[date, list[float]] = defaultdict(list)
    day_counts: dict[date, int] = defaultdict(int)
    for row in rows:
        stats = per_rater[row.rater_id]
        day = row.created_at.date()
        day_counts[day] += 1
        stats["flags"].append(float(row.flagged))
        if row.time_ms is not None:
            stats["seconds"].append(row.time_ms / 1000)
        mine = row.ranking()
        if mine is None:
            continue
        stats["ties"].append(float(len(set(row.ranks or [])) < len(row.shown)))
        if (first := _first_wins(row)) is not None:
            stats["first"].append(float(first))
            stats["chance"].append(1 / len(row.shown))
        others = [
            r for rater, r in by_comparison[row.comparison_id].items() if rater != row.rater_id
        ]
        if len(others) >= 2:
            majority = dict(zip(items[row.comparison_id],
                                consensus_ranks(items[row.comparison_id], others), strict=True))  # fmt: skip
            if (score := pair_agreement(mine, majority)) is not None:
                stats["majority"].append(score)
                per_day[day].append(score)
        if (
            row.comparison_id in gold
            and (score := pair_agreement(mine, gold[row.comparison_id])) is not None
        ):
            stats["gold"].append(score)
    raters = {
        rid: RaterQuality(
            rater_id=rid,
            judgments=len(s["flags"]),
            median_seconds=Figure(statistics.median(s["seconds"]) if s["seconds"] else None, len(s["seconds"])),
            majority=Figure.mean(s["majority"]),
            gold=Figure.mean(s["gold"]),
            first_wins=Figure.mean(s["first"]),
            ties=Figure.mean(s["ties"]),
            flags=Figure.mean(s["flags"]),
        )
        for rid, s in per_rater.items()
    }  # fmt: skip

    def pooled(key: str) -> list[float]:
        return [v for s in per_rater.values() for v in s[key]]

    agreements = {cid: mean_pairwise_agreement(list(r.values())) for cid, r in by_comparison.items()
                  if len(r) >= 2}  # fmt: skip
    known = {cid: a for cid, a in agreements.items() if a is not None}
    disagreed = sorted(known.items(), key=lambda kv: (kv[1], kv[0]))[:MOST_DISAGREED]
    seconds = pooled("seconds")
    chance = pooled("chance")
    return Quality(
        judgments=len(rows),
        comparisons_rated=len({r.comparison_id for r in rows}),
        alpha=_alpha(by_comparison, items),
        pairwise=Figure.mean(list(known.values())),
        majority=Figure.mean(pooled("majority")),
        gold=Figure.mean(pooled("gold")),
        first_wins=Figure.mean(pooled("first")),
        first_wins_chance=sum(chance) / len(chance) if chance else None,
        ties=Figure.mean(pooled("ties")),
        flags=Figure.mean(pooled("flags")),
        median_seconds=Figure(statistics.median(seconds) if seconds else None, len(seconds)),
        kappas=_kappas(by_comparison, items),
        raters=raters,
        disagreed=[(cid, Figure(a, len(by_comparison[cid]))) for cid, a in disagreed],
        per_day=[(d, day_counts[d], Figure.mean(per_day[d])) for d in sorted(day_counts)],
    )


def rater_names(session: Session, ids: Iterable[int]) -> dict[int, User]:
    """The users behind rater ids, for labelling the figures."""
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(list(set(ids)))))}

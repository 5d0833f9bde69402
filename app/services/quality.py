"""Data quality of a campaign and of each rater: every figure comes with the count it rests on.

The figures are kept, not recomputed per page. Each figure is a sum or a count, or is built from
some (alpha from a coincidence matrix, kappa from per-pair confusion counts, medians from a
histogram), so a comparison's share of them can be stored and a campaign's tally is the sum of its
comparisons' shares. `refresh` reads only the judgments since the last refresh, recomputes the
shares of the comparisons they touch from those comparisons' live judgments (corrections replace
what they correct), and moves the difference into the campaign tallies. A page then reads one
tally, whatever the number of judgments behind it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import combinations, permutations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    Judgment,
    QualityComparison,
    QualityProgress,
    QualityTally,
    User,
    utcnow,
)
from app.services.agreement import (
    Ranking,
    cohen_kappa_from_counts,
    consensus_ranks,
    mean_pairwise_agreement,
    ordinal_alpha_from_coincidences,
    pair_agreement,
    pair_relations,
)

MIN_KAPPA_OVERLAP = 5  # shared comparisons below which a kappa says more about luck than raters
MOST_DISAGREED = 15
# Judgments one refresh reads at most, so that a page after a large import stays quick; the rest
# are read by the next page or by `prefloop quality refresh`.
REFRESH_BATCH = 5_000
# Judgment ids are handed out before their transaction commits, so a judgment younger than this
# may still appear below an id already read: the refresh reads past it but only marks as done
# the judgments older than this (rating transactions last milliseconds).
SETTLE = timedelta(seconds=30)

Tally = dict[str, float]


@dataclass(frozen=True)
class Figure:
    """A number and how many observations it rests on (value None: too few to say)."""

    value: float | None
    n: int

    @classmethod
    def of(cls, tally: Mapping[str, float], key: str) -> Figure:
        """The mean kept as `key|s` (sum) over `key|n` (count)."""
        n = round(tally.get(f"{key}|n", 0))
        return cls(tally.get(f"{key}|s", 0.0) / n if n else None, n)


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
    # More judgments wait to be counted than one refresh reads (after a large import).
    catching_up: bool = False


# --- one comparison's share ------------------------------------------------------------------


def _bump(tally: Tally, key: str, by: float = 1.0) -> None:
    tally[key] = tally.get(key, 0.0) + by


def _mean_into(tally: Tally, key: str, value: float) -> None:
    _bump(tally, f"{key}|s", value)
    _bump(tally, f"{key}|n")


def seconds_bucket(ms: int) -> int:
    """A time spent as tenths of a second, coarser as it grows (a tenth under 10 s, a second
    under 1,000 s, a minute beyond) so that a rater's histogram stays small."""
    if ms < 10_000:
        return ms // 100
    if ms < 1_000_000:
        return ms // 1000 * 10
    return ms // 60_000 * 600


def _first_wins(row: Row) -> bool | None:
    """Whether the first response shown was the single best; None when no single best."""
    if row.ranks is None or row.ranks.count(0) != 1:
        return None
    return row.ranks[0] == 0


def _row_share(
    tally: Tally, row: Row, others: list[Ranking], items: list[int], gold: Ranking | None
) -> None:
    rater = f"r|{row.rater_id}"
    day = f"d|{row.created_at.date().isoformat()}"
    _bump(tally, "j")
    _bump(tally, f"{rater}|j")
    _bump(tally, f"{day}|j")
    _mean_into(tally, f"{rater}|flag", float(row.flagged))
    if row.time_ms is not None:
        _bump(tally, f"{rater}|t|{seconds_bucket(row.time_ms)}")
    mine = row.ranking()
    if mine is None:
        return
    _mean_into(tally, f"{rater}|tie", float(len(set(row.ranks or [])) < len(row.shown)))
    if (first := _first_wins(row)) is not None:
        _mean_into(tally, f"{rater}|first", float(first))
        _bump(tally, f"{rater}|chance", 1 / len(row.shown))
    if len(others) >= 2:
        majority = dict(zip(items, consensus_ranks(items, others), strict=True))
        if (score := pair_agreement(mine, majority)) is not None:
            _mean_into(tally, f"{rater}|maj", score)
            _mean_into(tally, f"{day}|maj", score)
    if gold is not None and (score := pair_agreement(mine, gold)) is not None:
        _mean_into(tally, f"{rater}|gold", score)


def _agreement_share(tally: Tally, rankings: dict[int, Ranking], items: list[int]) -> None:
    """Alpha's coincidences (units: each response, values: its ranks) and kappa's confusion
    counts for each pair of raters, over one comparison ranked by two raters or more."""
    _bump(tally, "a|n")
    for response in items:
        values = [r[response] for r in rankings.values() if response in r]
        for c, k in permutations(values, 2):
            _bump(tally, f"o|{c}|{k}", 1 / (len(values) - 1))
    for a, b in combinations(sorted(rankings), 2):
        _bump(tally, f"k|{a}|{b}|n")
        ra, rb = pair_relations(rankings[a], items), pair_relations(rankings[b], items)
        for pair in ra.keys() & rb.keys():
            _bump(tally, f"k|{a}|{b}|{ra[pair]}|{rb[pair]}")


def comparison_share(
    rows: list[Row], items: list[int], gold: Ranking | None
) -> tuple[Tally, float | None, int]:
    """One comparison's share of its campaign's tally, its raters' mean agreement and the number
    of rankings it rests on, from the comparison's live judgments."""
    tally: Tally = {}
    if not rows:
        return tally, None, 0
    rankings = {row.rater_id: r for row in rows if (r := row.ranking()) is not None}
    _bump(tally, "c")
    for row in rows:
        others = [r for rater, r in rankings.items() if rater != row.rater_id]
        _row_share(tally, row, others, items, gold)
    agreement = None
    if len(rankings) >= 2:
        _agreement_share(tally, rankings, items)
        agreement = mean_pairwise_agreement(list(rankings.values()))
        if agreement is not None:
            _mean_into(tally, "pw", agreement)
    return tally, agreement, len(rankings)


def add_tally(into: Tally, other: Mapping[str, float], sign: int = 1) -> None:
    """`into` += sign * `other`, key by key; keys that come back to zero are dropped."""
    for key, value in other.items():
        total = into.get(key, 0.0) + sign * value
        if abs(total) < 1e-9:
            into.pop(key, None)
        else:
            into[key] = total


# --- keeping the tallies ------------------------------------------------------------------------


def _rows_of(session: Session, comparison_ids: list[int]) -> dict[int, list[Row]]:
    stmt = (
        select(Judgment.id, Judgment.comparison_id, Judgment.rater_id, Judgment.shown_order,
               Judgment.ranks, Judgment.flags, Judgment.time_spent_ms, Judgment.created_at)
        .where(Judgment.comparison_id.in_(comparison_ids), Judgment.is_live())
        .order_by(Judgment.id)
    )  # fmt: skip
    rows: dict[int, list[Row]] = defaultdict(list)
    for jid, cid, rid, shown, ranks, flags, ms, at in session.execute(stmt):
        flagged = any(flags.values()) if flags else False
        ranked = None if ranks is None else list(ranks)
        rows[cid].append(Row(jid, cid, rid, list(shown), ranked, flagged, ms, at))
    return rows


def _items_and_gold(
    session: Session, comparison_ids: list[int]
) -> tuple[dict[int, list[int]], dict[int, Ranking], dict[int, int]]:
    """Each comparison's responses (in import order), its gold ranking if any, its campaign."""
    items: dict[int, list[int]] = defaultdict(list)
    for cid, rid in session.execute(
        select(ComparisonItem.comparison_id, ComparisonItem.response_id)
        .where(ComparisonItem.comparison_id.in_(comparison_ids))
        .order_by(ComparisonItem.comparison_id, ComparisonItem.position)
    ):
        items[cid].append(rid)
    gold: dict[int, Ranking] = {}
    campaign_of: dict[int, int] = {}
    for cid, campaign_id, is_gold, ranks in session.execute(
        select(Comparison.id, Comparison.campaign_id, Comparison.is_gold, Comparison.gold_ranks)
        .where(Comparison.id.in_(comparison_ids))
    ):  # fmt: skip
        campaign_of[cid] = campaign_id
        if is_gold and ranks:
            gold[cid] = {items[cid][p]: r for p, r in enumerate(ranks)}
    return items, gold, campaign_of


def recount(session: Session, comparison_ids: Iterable[int]) -> None:
    """Recompute these comparisons' shares and move the differences into their campaigns'."""
    ids = sorted(set(comparison_ids))
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        rows = _rows_of(session, chunk)
        items, gold, campaign_of = _items_and_gold(session, chunk)
        old = {
            q.comparison_id: q
            for q in session.scalars(
                select(QualityComparison).where(QualityComparison.comparison_id.in_(chunk))
            )
        }
        deltas: dict[int, Tally] = defaultdict(dict)
        kept = []
        for cid in chunk:
            share, agreement, n_rankings = comparison_share(rows[cid], items[cid], gold.get(cid))
            campaign_id = campaign_of[cid]
            if cid in old:
                add_tally(deltas[campaign_id], old[cid].tally, -1)
            add_tally(deltas[campaign_id], share)
            kept.append({"comparison_id": cid, "campaign_id": campaign_id,
                         "agreement": agreement, "rankings": n_rankings, "tally": share})  # fmt: skip
        session.execute(delete(QualityComparison).where(QualityComparison.comparison_id.in_(chunk)))
        session.execute(insert(QualityComparison), kept)
        _apply(session, deltas)


def _apply(session: Session, deltas: dict[int, Tally]) -> None:
    tallies = {
        t.campaign_id: t
        for t in session.scalars(select(QualityTally).where(QualityTally.campaign_id.in_(deltas)))
    }
    for campaign_id, delta in deltas.items():
        if campaign_id not in tallies:
            session.add(QualityTally(campaign_id=campaign_id, tally=dict(delta)))
            continue
        tally = dict(tallies[campaign_id].tally)
        add_tally(tally, delta)
        tallies[campaign_id].tally = tally  # a new dict, so the JSON column sees the change
    session.flush()


def _lock_progress(session: Session) -> int:
    """Take the single progress row's lock (a row lock on PostgreSQL, the database write lock on
    SQLite), so that two refreshes never move the same difference twice; returns how far the
    tallies have read."""
    dialect = session.get_bind().dialect.name
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(dialect_insert(QualityProgress).values(id=1, judgment_id=0, refreshed_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["id"]))  # fmt: skip
    return session.execute(
        update(QualityProgress).where(QualityProgress.id == 1)
        .values(refreshed_at=utcnow()).returning(QualityProgress.judgment_id)
    ).scalar_one()  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """What a refresh read: judgments counted, and whether more are waiting."""

    read: int
    caught_up: bool


def refresh(session: Session, *, limit: int | None = None, settle: timedelta = SETTLE) -> Progress:
    """Count the judgments made since the last refresh (at most `limit` of them) into the tallies.

    The caller commits; until then other refreshes wait on the progress row.
    """
    limit = limit or REFRESH_BATCH
    done = start = _lock_progress(session)
    new = session.execute(
        select(Judgment.id, Judgment.comparison_id, Judgment.created_at)
        .where(Judgment.id > done).order_by(Judgment.id).limit(limit)
    ).all()  # fmt: skip
    if not new:
        return Progress(0, True)
    recount(session, (cid for _, cid, _ in new))
    horizon = utcnow() - settle
    for jid, _, created_at in new:
        if created_at >= horizon:
            break
        done = jid
    session.execute(update(QualityProgress).where(QualityProgress.id == 1).values(judgment_id=done))
    # Caught up when the batch was not full, or when all it read is too young to mark as done.
    return Progress(len(new), len(new) < limit or done <= start)


def rebuild(session: Session) -> None:
    """Forget every kept share and read the judgments again from the first (the caller commits;
    later refreshes carry on from here)."""
    _lock_progress(session)
    session.execute(delete(QualityComparison))
    session.execute(delete(QualityTally))
    session.execute(update(QualityProgress).values(judgment_id=0))


# --- figures from a tally -------------------------------------------------------------------


def _tally_of(session: Session, campaign_id: int | None) -> Tally:
    stmt = select(QualityTally.tally)
    if campaign_id is not None:
        stmt = stmt.where(QualityTally.campaign_id == campaign_id)
    total: Tally = {}
    for tally in session.scalars(stmt):
        add_tally(total, tally)
    return total


def median_of(histogram: Mapping[int, float]) -> float | None:
    """The median of values kept as {tenths of a second: count}, in seconds."""
    n = round(sum(histogram.values()))
    if n == 0:
        return None
    wanted = {(n - 1) // 2, n // 2}
    found: list[float] = []
    seen = 0
    for bucket in sorted(histogram):
        count = round(histogram[bucket])
        found += [bucket / 10] * sum(seen <= w < seen + count for w in wanted)
        seen += count
    return sum(found) / len(found)


def _split(
    tally: Tally,
) -> tuple[dict[int, Tally], dict[str, Tally], Tally, Tally, dict[tuple[int, int], Tally]]:
    """Tally keys grouped by what they are about: raters, days, coincidences, kappa pairs."""
    raters: dict[int, Tally] = defaultdict(dict)
    days: dict[str, Tally] = defaultdict(dict)
    pairs: dict[tuple[int, int], Tally] = defaultdict(dict)
    coincidences: Tally = {}
    rest: Tally = {}
    for key, value in tally.items():
        kind, _, tail = key.partition("|")
        if kind == "r":
            rater, _, metric = tail.partition("|")
            raters[int(rater)][metric] = value
        elif kind == "d":
            day, _, metric = tail.partition("|")
            days[day][metric] = value
        elif kind == "o":
            coincidences[tail] = value
        elif kind == "k" and tail.count("|") >= 2:
            a, b, metric = tail.split("|", 2)
            pairs[(int(a), int(b))][metric] = value
        else:
            rest[key] = value
    return raters, days, coincidences, rest, pairs


def _histogram(tally: Tally) -> dict[int, float]:
    return {int(k[2:]): v for k, v in tally.items() if k.startswith("t|")}


def _rater_quality(rater_id: int, t: Tally) -> RaterQuality:
    times = _histogram(t)
    return RaterQuality(
        rater_id=rater_id,
        judgments=round(t.get("j", 0)),
        median_seconds=Figure(median_of(times), round(sum(times.values()))),
        majority=Figure.of(t, "maj"),
        gold=Figure.of(t, "gold"),
        first_wins=Figure.of(t, "first"),
        ties=Figure.of(t, "tie"),
        flags=Figure.of(t, "flag"),
    )


def _pooled(raters: dict[int, Tally], metric: str) -> Figure:
    summed = {f"{metric}|{k}": sum(t.get(f"{metric}|{k}", 0.0) for t in raters.values())
              for k in "sn"}  # fmt: skip
    return Figure.of(summed, metric)


def _kappas(pairs: dict[tuple[int, int], Tally]) -> list[tuple[int, int, Figure]]:
    out = []
    for (a, b), t in sorted(pairs.items()):
        shared = round(t.get("n", 0))
        if shared < MIN_KAPPA_OVERLAP:
            continue
        counts = {tuple(int(x) for x in k.split("|")): v for k, v in t.items() if k != "n"}
        out.append((a, b, Figure(cohen_kappa_from_counts(counts), shared)))  # type: ignore[arg-type]
    return out


def _disagreed(session: Session, campaign_id: int | None) -> list[tuple[int, Figure]]:
    stmt = (
        select(QualityComparison.comparison_id, QualityComparison.agreement,
               QualityComparison.rankings)
        .where(QualityComparison.agreement.is_not(None))
        .order_by(QualityComparison.agreement, QualityComparison.comparison_id)
        .limit(MOST_DISAGREED)
    )  # fmt: skip
    if campaign_id is not None:
        stmt = stmt.where(QualityComparison.campaign_id == campaign_id)
    return [(cid, Figure(a, n)) for cid, a, n in session.execute(stmt)]


def compute_quality(session: Session, *, campaign_id: int | None) -> Quality:
    """Every quality figure of a campaign (None: all campaigns), per rater too, from the kept
    tallies; call `refresh` first to count the newest judgments."""
    raters, days, coincidences, rest, pairs = _split(_tally_of(session, campaign_id))
    o = {tuple(int(v) for v in k.split("|")): x for k, x in coincidences.items()}
    pooled_times: dict[int, float] = defaultdict(float)
    for t in raters.values():
        for bucket, count in _histogram(t).items():
            pooled_times[bucket] += count
    first = _pooled(raters, "first")
    chance = sum(t.get("chance", 0.0) for t in raters.values())
    return Quality(
        judgments=round(rest.get("j", 0)),
        comparisons_rated=round(rest.get("c", 0)),
        alpha=Figure(ordinal_alpha_from_coincidences(o), round(rest.get("a|n", 0))),  # type: ignore[arg-type]
        pairwise=Figure.of(rest, "pw"),
        majority=_pooled(raters, "maj"),
        gold=_pooled(raters, "gold"),
        first_wins=first,
        first_wins_chance=chance / first.n if first.n else None,
        ties=_pooled(raters, "tie"),
        flags=_pooled(raters, "flag"),
        median_seconds=Figure(median_of(pooled_times), round(sum(pooled_times.values()))),
        kappas=_kappas(pairs),
        raters={rid: _rater_quality(rid, t) for rid, t in sorted(raters.items())},
        disagreed=_disagreed(session, campaign_id),
        per_day=[
            (date.fromisoformat(d), round(t.get("j", 0)), Figure.of(t, "maj"))
            for d, t in sorted(days.items())
        ],  # fmt: skip
    )


def rater_names(session: Session, ids: Iterable[int]) -> dict[int, User]:
    """The users behind rater ids, for labelling the figures."""
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(list(set(ids)))))}


def refresh_quality(session: Session) -> Progress:
    """Count the newest judgments and commit, so that no lock is held while a page renders."""
    progress = refresh(session)
    session.commit()
    return progress


def fresh_quality(session: Session, *, campaign_id: int | None) -> Quality:
    """The figures with the newest judgments counted (a GET page's view; commits)."""
    progress = refresh_quality(session)
    quality = compute_quality(session, campaign_id=campaign_id)
    quality.catching_up = not progress.caught_up
    return quality

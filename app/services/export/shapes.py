"""Export rows as plain dicts in the fields of trainer.schema's records, one function per shape.

Dicts rather than the Pydantic records because building a model per pair costs several times
the whole database read; tests check every shape against trainer.schema (its fields, in
`written_fields` order, and a model validation of each row) so the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from app.schemas.export import ExportQuery
from app.services.agreement import bradley_terry, consensus_ranks, mean_pairwise_agreement
from app.services.export.source import JudgmentRow
from trainer.schema import (
    SCHEMA_VERSION,
    PairExpansion,
    TieHandling,
    implied_pairs,
    pair_margin,
)

Row = dict[str, Any]


def _flags(flags: dict[str, list[str]], response_id: int) -> list[str]:
    return list(flags.get(str(response_id), ())) if flags else []


def _who_and_where(row: JudgmentRow) -> Row:
    """The fields every per-judgment record carries about its rater and its comparison's place."""
    return {
        "rater": row.rater,
        "campaign": row.campaign,
        "round": row.round,
        "is_gold": row.is_gold,
        "weight": 1.0,
        "late": row.late,
    }


def pairwise_rows(
    rows: Iterable[JudgmentRow],
    *,
    ties: TieHandling,
    expansion: PairExpansion,
    conversational: bool,
) -> Iterator[Row]:
    """The pairs the judgments imply, as trainer.schema.ranking_to_pairwise expands them."""
    kind = "pairwise_conversational" if conversational else "pairwise"
    for row in rows:  # one loop over a batch: this runs once per exported pair
        ranks = row.ranks
        if row.not_rankable or ranks is None:
            continue
        judged = _who_and_where(row)  # once per judgment, shared by its pairs
        for better, worse, tie in implied_pairs(ranks, ties=ties, expansion=expansion):
            margin = float(pair_margin(ranks, row.strength, better, worse))
            prompt: Any = row.prompt
            chosen: Any = row.texts[better]
            rejected: Any = row.texts[worse]
            if conversational:
                prompt = [{"role": "user", "content": prompt}]
                chosen = [{"role": "assistant", "content": chosen}]
                rejected = [{"role": "assistant", "content": rejected}]
            yield {
                "kind": kind,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "margin": margin,
                "tie": tie,
                "comparison_id": row.comparison_id,
                "judgment_id": row.id,
                **judged,
                "chosen_flags": _flags(row.flags, row.shown_order[better]),
                "rejected_flags": _flags(row.flags, row.shown_order[worse]),
                "chosen_confirmed_unsafe": row.shown_order[better] in row.confirmed,
                "rejected_confirmed_unsafe": row.shown_order[worse] in row.confirmed,
            }


def _read(row: JudgmentRow) -> list[bool | None]:
    if row.read_to_end is None or len(row.read_to_end) != len(row.shown_order):
        return [None] * len(row.shown_order)
    return list(row.read_to_end)


def ranking_row(row: JudgmentRow) -> Row:
    """One judgment as a RankingRecord: the raw weak order over the responses as shown."""
    return {
        "kind": "ranking",
        "schema_version": SCHEMA_VERSION,
        "comparison_id": row.comparison_id,
        "judgment_id": row.id,
        "prompt": row.prompt,
        "responses": [
            {
                "response_id": rid,
                "text": text,
                "model_version": label,
                "flags": list(row.flags.get(str(rid), ())),
                "read_to_end": read,
                "confirmed_unsafe": rid in row.confirmed,
            }
            for rid, text, label, read in zip(
                row.shown_order, row.texts, row.labels, _read(row), strict=True
            )
        ],
        "ranks": list(row.ranks or []),
        "strength": row.strength,
        "not_rankable": row.not_rankable,
        **_who_and_where(row),
        "created_at": row.created_at,
    }


def latest_per_rater(group: list[JudgmentRow]) -> list[JudgmentRow]:
    """Each rater's newest judgment in a comparison's group."""
    latest: dict[str, JudgmentRow] = {}
    for row in group:
        if row.rater not in latest or row.id > latest[row.rater].id:
            latest[row.rater] = row
    return list(latest.values())


def group_agreement(group: list[JudgmentRow]) -> float | None:
    """Mean pairwise agreement of the raters' latest rankings of one comparison."""
    rankings = [r for row in latest_per_rater(group) if (r := row.ranking()) is not None]
    return mean_pairwise_agreement(rankings)


def aggregated_row(group: list[JudgmentRow]) -> Row:
    """One comparison's judgments pooled: consensus, agreement, Bradley-Terry scores."""
    first = group[0]
    items = first.items or first.shown_order
    texts: dict[int, tuple[str, str]] = {}
    pooled: dict[int, set[str]] = {rid: set() for rid in items}
    confirmed: set[int] = set()
    for row in group:
        confirmed |= row.confirmed
        texts.update(zip(row.shown_order, zip(row.texts, row.labels, strict=True), strict=True))
        for rid, names in row.flags.items():
            pooled.setdefault(int(rid), set()).update(names)
    latest = latest_per_rater(group)
    ranked = [(row.rater, r) for row in latest if (r := row.ranking())]
    rankings = [r for _, r in ranked]
    return {
        "kind": "aggregated",
        "schema_version": SCHEMA_VERSION,
        "comparison_id": first.comparison_id,
        "prompt": first.prompt,
        "responses": [
            {
                "response_id": rid,
                "text": texts[rid][0],
                "model_version": texts[rid][1],
                "flags": sorted(pooled[rid]),
                "read_to_end": None,  # per rater, so not pooled: see the ranking shape
                "confirmed_unsafe": rid in confirmed,
            }
            for rid in items
        ],
        "consensus_ranks": consensus_ranks(items, rankings),
        "bt_scores": bradley_terry(items, rankings),
        "n_raters": len(rankings),
        "n_late": sum(1 for row in latest if row.late and row.ranking()),
        "agreement": mean_pairwise_agreement(rankings),
        "raters": sorted(rater for rater, _ in ranked),
        "campaign": first.campaign,
        "round": first.round,
        "is_gold": first.is_gold,
    }


def by_comparison(batches: Iterable[list[JudgmentRow]]) -> Iterator[list[JudgmentRow]]:
    """Consecutive rows of one comparison as a group (rows arrive ordered by comparison)."""
    group: list[JudgmentRow] = []
    for batch in batches:
        for row in batch:
            if group and row.comparison_id != group[0].comparison_id:
                yield group
                group = []
            group.append(row)
    if group:
        yield group


def records(batches: Iterable[list[JudgmentRow]], query: ExportQuery) -> Iterator[Row]:
    """The export's rows in the query's shape, after the agreement filter."""
    if query.grouped:
        for group in by_comparison(batches):
            if query.min_agreement is not None:
                agreement = group_agreement(group)
                if agreement is None or agreement < query.min_agreement:
                    continue
            if query.shape == "aggregated":
                yield aggregated_row(group)
            else:
                yield from _per_judgment(group, query)
    else:
        for batch in batches:
            yield from _per_judgment(batch, query)


def _per_judgment(rows: Iterable[JudgmentRow], query: ExportQuery) -> Iterator[Row]:
    if query.shape == "ranking":
        yield from (ranking_row(row) for row in rows)
        return
    yield from pairwise_rows(
        rows,
        ties=query.ties,
        expansion=query.expansion,
        conversational=query.style == "conversational",
    )

"""The export's source: judgment rows streamed from the database, with their texts, in batches.

One server-side cursor (PostgreSQL) walks the judgments; each batch then fetches the texts of the
prompts and responses it shows, once each. Memory holds one batch, whatever the size of the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from json import loads
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    null,
    select,
)
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import (
    Campaign,
    Comparison,
    ComparisonItem,
    Judgment,
    Prompt,
    Response,
    SafetyReview,
    User,
)
from app.models.review import CONFIRMED
from app.schemas.export import ExportQuery

BATCH_ROWS = 2000


@dataclass(slots=True)
class JudgmentRow:
    """One judgment with everything an export record needs; texts are in display order."""

    id: int
    comparison_id: int
    shown_order: list[int]
    ranks: list[int] | None
    strength: int | None
    not_rankable: bool
    flags: dict[str, list[str]]
    created_at: datetime | None
    rater: str
    campaign: str
    round: int | None
    is_gold: bool
    prompt: str
    texts: list[str]
    labels: list[str]  # empty for the pairwise shape, which does not show them
    items: list[int] | None = None  # the comparison's response ids in canonical order
    read_to_end: list[bool] | None = None  # in display order; None when not reported
    late: bool = False  # submitted on an expired lease: counted like any other (see README)
    confirmed: frozenset[int] = frozenset()  # shown responses a clinical lead confirmed unsafe

    def ranking(self) -> dict[int, int] | None:
        """{response_id: rank}, or None for a not-rankable verdict."""
        if self.not_rankable or self.ranks is None:
            return None
        return dict(zip(self.shown_order, self.ranks, strict=True))


def scope_filters(query: ExportQuery, *, created: Any) -> list[Any]:
    """WHERE clauses for the filters judgments and skips share (campaign, round, gold, rater,
    dates); `created` is the row's own timestamp column."""
    clauses: list[Any] = []
    if query.campaign_id is not None:
        clauses.append(Comparison.campaign_id == query.campaign_id)
    if query.round_id is not None:
        clauses.append(Comparison.round_id == query.round_id)
    if query.exclude_gold:
        clauses.append(Comparison.is_gold.is_(False))
    if query.rater is not None:
        clauses.append(User.pseudonym == query.rater)
    if query.created_after is not None:
        clauses.append(created >= query.created_after)
    if query.created_before is not None:
        clauses.append(created < query.created_before)
    return clauses


def judgment_filters(query: ExportQuery) -> list[Any]:
    """WHERE clauses for the export's filters."""
    clauses = scope_filters(query, created=Judgment.created_at)
    if not query.include_superseded:
        clauses.append(Judgment.is_live())
    if query.max_judgment_id is not None:
        clauses.append(Judgment.id <= query.max_judgment_id)
    return clauses


def judgment_select(query: ExportQuery) -> Select[*tuple[Any, ...]]:
    """The judgments to export, joined to what each row names, in a stable order."""
    # JSON columns come as text and are parsed once in Python, and created_at only when the
    # shape shows it: per-value type processing costs more than the database's whole read.
    created = Judgment.created_at if query.shape == "ranking" else null()
    stmt = (
        select(
            Judgment.id,
            Judgment.comparison_id,
            cast(Judgment.shown_order, Text),
            cast(Judgment.ranks, Text),
            Judgment.strength,
            Judgment.not_rankable,
            cast(Judgment.flags, Text),
            created,
            User.pseudonym,
            Campaign.name,
            Comparison.round_id,
            Comparison.is_gold,
            Comparison.prompt_id,
            cast(Judgment.read_to_end, Text) if query.shape == "ranking" else null(),
            Judgment.lease_expired,
        )
        .join(User, User.id == Judgment.rater_id)
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .where(and_(True, *judgment_filters(query)))
    )
    # Grouped shapes need a comparison's judgments together; the rest stream in id order.
    order = (Judgment.comparison_id, Judgment.id) if query.grouped else (Judgment.id,)
    return stmt.order_by(*order)


def _id_in(column: Any, ids: set[int], dialect: str) -> Any:
    # One array parameter on PostgreSQL instead of thousands of bound values.
    if dialect == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer)))
    return column.in_(ids)


def _texts(conn: Connection, ids: set[int]) -> tuple[dict[int, str], dict[int, str]]:
    rows = conn.execute(
        select(Response.id, Response.text, Response.model_label).where(
            _id_in(Response.id, ids, conn.dialect.name)
        )
    ).all()  # all at once: iterating fetches row by row
    return {rid: text for rid, text, _ in rows}, {rid: label for rid, _, label in rows}


def _confirmed(conn: Connection, ids: set[int]) -> frozenset[int]:
    # A handful of rows at most per batch: the responses a clinical lead confirmed unsafe.
    rows = conn.execute(
        select(SafetyReview.response_id).where(
            _id_in(SafetyReview.response_id, ids, conn.dialect.name),
            SafetyReview.verdict == CONFIRMED,
        )
    )
    return frozenset(rid for (rid,) in rows)


def _prompts(conn: Connection, ids: set[int]) -> dict[int, str]:
    # Fetched once per batch, not joined per judgment: each prompt has several raters.
    rows = conn.execute(
        select(Prompt.id, Prompt.text).where(_id_in(Prompt.id, ids, conn.dialect.name))
    ).all()
    return {pid: text for pid, text in rows}


def _items(conn: Connection, comparison_ids: set[int]) -> dict[int, list[int]]:
    rows = conn.execute(
        select(ComparisonItem.comparison_id, ComparisonItem.response_id)
        .where(_id_in(ComparisonItem.comparison_id, comparison_ids, conn.dialect.name))
        .order_by(ComparisonItem.comparison_id, ComparisonItem.position)
    )
    out: dict[int, list[int]] = {}
    for cid, rid in rows:
        out.setdefault(cid, []).append(rid)
    return out


def int_list(text: str | None) -> list[int] | None:
    """A JSON array of ints as stored ("[3, 1, 2]"), parsed without the JSON machinery."""
    # This runs twice per exported judgment; split-and-int is several times faster than loads.
    if text is None or text == "null":
        return None
    try:
        return list(map(int, text[1:-1].split(",")))
    except ValueError:  # "[]", or not plain ints after all: let the JSON parser decide
        return [int(v) for v in loads(text)]


def _enrich(conn: Connection, batch: list[Any], *, shape: str) -> list[JudgmentRow]:
    shown_orders = [int_list(row[2]) or [] for row in batch]
    shown_ids = {rid for shown in shown_orders for rid in shown}
    text_of, label_of = _texts(conn, shown_ids)
    confirmed = _confirmed(conn, shown_ids)
    prompt_of = _prompts(conn, {row[12] for row in batch})
    items = _items(conn, {row[1] for row in batch}) if shape == "aggregated" else {}
    labelled = shape != "pairwise"  # only ranking and aggregated rows name the models
    out = []
    for row, shown in zip(batch, shown_orders, strict=True):
        (
            jid,
            cid,
            _,
            ranks,
            strength,
            nr,
            flags,
            at,
            rater,
            camp,
            rnd,
            gold,
            prompt_id,
            read,
            late,
        ) = row
        try:
            texts = [text_of[rid] for rid in shown]
        except KeyError as exc:
            raise Conflict(f"judgment {jid} shows response {exc}, which no longer exists") from exc
        out.append(
            JudgmentRow(
                jid,
                cid,
                shown,
                int_list(ranks),
                strength,
                nr,
                loads(flags) if flags and flags != "{}" else {},
                at,
                rater,
                camp,
                rnd,
                gold,
                prompt_of[prompt_id],
                texts,
                [label_of[rid] for rid in shown] if labelled else [],
                items.get(cid),
                loads(read) if read is not None and read != "null" else None,
                late,
                confirmed & frozenset(shown) if confirmed else frozenset(),
            )
        )
    return out


def stream_judgments(
    session: Session, *, query: ExportQuery, batch_rows: int = BATCH_ROWS
) -> Iterator[list[JudgmentRow]]:
    """Batches of export rows; a server-side cursor keeps memory to one batch on PostgreSQL."""
    # Core on the session's connection (same transaction), not ORM: rows, not entities.
    conn = session.connection()
    result = conn.execute(
        judgment_select(query),
        execution_options={"yield_per": batch_rows},  # a server-side cursor, fixed batches
    )
    try:
        for partition in result.partitions(batch_rows):
            yield _enrich(conn, list(partition), shape=query.shape)
    finally:
        result.close()

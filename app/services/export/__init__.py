"""Export preference data (pairwise, ranking, aggregated) as streamed JSONL or Parquet bytes.

The pipeline, one module a stage, in the order the data flows:
  source   judgment rows (and their texts) streamed from the database in batches
  skips    the comparisons raters gave back, for the ranking shape
  shapes   rows as plain dicts in the fields of trainer.schema's records, one function per shape
  writers  dicts to JSON lines or Parquet, chunk by chunk
This module joins them: check the query's references, then stream.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Campaign, TrainingRound
from app.schemas.export import ExportQuery
from app.services.campaigns import get_campaign
from app.services.export.shapes import records
from app.services.export.skips import skip_rows
from app.services.export.source import BATCH_ROWS, stream_judgments
from app.services.export.writers import SCHEMAS, jsonl_chunks, parquet_chunks

MEDIA_TYPES = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class Export:
    """A ready-to-stream export: its bytes (lazy), media type and a file name."""

    chunks: Iterator[bytes]
    media_type: str
    filename: str


def _check_references(session: Session, query: ExportQuery) -> None:
    # An unknown campaign or round is a typo to report, not an empty file to hand back.
    if query.campaign_id is not None:
        get_campaign(session, campaign_id=query.campaign_id)
    if query.round_id is not None and session.get(TrainingRound, query.round_id) is None:
        raise NotFound(f"no training round with id {query.round_id}", field="round_id")


def _schema_key(query: ExportQuery) -> str:
    if query.shape == "pairwise" and query.style == "conversational":
        return "pairwise_conversational"
    return query.shape


def export_bytes(
    session: Session, *, query: ExportQuery, batch_rows: int = BATCH_ROWS
) -> Iterator[bytes]:
    """The export's bytes, produced lazily while the caller consumes them."""
    rows = records(stream_judgments(session, query=query, batch_rows=batch_rows), query)
    if query.include_skips:
        rows = chain(rows, skip_rows(session, query=query))
    if query.format == "parquet":
        return _gc_paused(parquet_chunks(rows, schema=SCHEMAS[_schema_key(query)]))
    return _gc_paused(jsonl_chunks(rows))


def _gc_paused(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, with the cyclic garbage collector paused while each one is made.

    An export allocates millions of short-lived dicts and lists with no cycles between them;
    the collector scanning them took a quarter of the export's time. Reference counting still
    frees them, and the collector runs again between chunks (so other threads lose nothing).
    """
    while True:
        enabled = gc.isenabled()
        gc.disable()
        try:
            chunk = next(chunks, None)
        finally:
            if enabled:
                gc.enable()
        if chunk is None:
            return
        yield chunk


def start_export(session: Session, *, query: ExportQuery) -> Export:
    """Validate the references now (so errors are a 4xx, not a broken stream), then stream."""
    _check_references(session, query)
    suffix = query.format
    name = f"prefloop-{_schema_key(query)}"
    if query.campaign_id is not None:
        name += f"-campaign{query.campaign_id}"
    return Export(
        chunks=export_bytes(session, query=query),
        media_type=MEDIA_TYPES[query.format],
        filename=f"{name}.{suffix}",
    )


def campaign_id_by_name(session: Session, *, name: str) -> int:
    """The id of a campaign given by name or by id (for the CLI)."""
    if name.isdigit():
        return int(name)
    found = session.scalar(select(Campaign.id).where(Campaign.name == name))
    if found is None:
        raise NotFound(f"no campaign named {name!r}", field="campaign")
    return found

"""Writers that turn a stream of export rows into a stream of bytes: JSONL and Parquet.

Both hand back bytes in chunks as they go, so an HTTP response or a file grows while memory holds
one chunk (JSONL) or one row group (Parquet).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

JSONL_CHUNK_BYTES = 256 * 1024
PARQUET_ROW_GROUP = 10_000


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode


_LITERALS = {True: "true", False: "false", None: "null"}


def _pairwise_line(row: dict[str, Any], escaped: dict[str, str]) -> str:
    """A pairwise row's JSON, written field by field: the export's hot loop.

    Each long text is escaped once per chunk (a response recurs in every pair and judgment that
    shows it); tests check these lines parse to the same rows as the generic encoder's.
    """

    def text(value: str | None) -> str:
        if value is None:
            return "null"
        fragment = escaped.get(value)
        if fragment is None:
            fragment = escaped[value] = _encode(value)
        return fragment

    def number(value: object) -> str:
        if type(value) is int:
            return str(value)
        return "null" if value is None else _encode(value)

    return (
        f'{{"kind":"pairwise","prompt":{text(row["prompt"])},"chosen":{text(row["chosen"])},'
        f'"rejected":{text(row["rejected"])},"margin":{float(row["margin"])!r},'
        f'"tie":{_LITERALS[row["tie"]]},"comparison_id":{number(row["comparison_id"])},'
        f'"judgment_id":{number(row["judgment_id"])},"rater":{text(row["rater"])},'
        f'"campaign":{text(row["campaign"])},"round":{number(row["round"])},'
        f'"is_gold":{_LITERALS[row["is_gold"]]},"weight":{float(row["weight"])!r},'
        f'"late":{_LITERALS[row["late"]]},"chosen_flags":{_encode(row["chosen_flags"]) if row["chosen_flags"] else "[]"},'
        f'"rejected_flags":{_encode(row["rejected_flags"]) if row["rejected_flags"] else "[]"},'
        f'"chosen_confirmed_unsafe":{_LITERALS[row["chosen_confirmed_unsafe"]]},'
        f'"rejected_confirmed_unsafe":{_LITERALS[row["rejected_confirmed_unsafe"]]}}}'
    )


def jsonl_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """UTF-8 JSON lines, yielded in chunks of about JSONL_CHUNK_BYTES."""
    lines: list[str] = []
    escaped: dict[str, str] = {}  # cleared with each chunk, so memory stays one chunk
    size = 0
    for row in rows:
        plain = row.get("kind") == "pairwise"
        line = _pairwise_line(row, escaped) if plain else _encode(row)
        lines.append(line)
        size += len(line)
        if size >= JSONL_CHUNK_BYTES:
            lines.append("")
            yield "\n".join(lines).encode()
            lines, size = [], 0
            escaped.clear()
    if lines:
        lines.append("")
        yield "\n".join(lines).encode()


_FLAGS = pa.list_(pa.string())
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_RESPONSES = pa.list_(
    pa.struct(
        [
            ("response_id", pa.int64()),
            ("text", pa.string()),
            ("model_version", pa.string()),
            ("flags", _FLAGS),
            ("read_to_end", pa.bool_()),
            ("confirmed_unsafe", pa.bool_()),
        ]
    )
)


def _pairwise(text: pa.DataType, kind: str) -> pa.Schema:
    return pa.schema(
        [
            ("kind", pa.string()),
            ("prompt", text),
            ("chosen", text),
            ("rejected", text),
            ("margin", pa.float64()),
            ("tie", pa.bool_()),
            ("comparison_id", pa.int64()),
            ("judgment_id", pa.int64()),
            ("rater", pa.string()),
            ("campaign", pa.string()),
            ("round", pa.int64()),
            ("is_gold", pa.bool_()),
            ("weight", pa.float64()),
            ("late", pa.bool_()),
            ("chosen_flags", _FLAGS),
            ("rejected_flags", _FLAGS),
            ("chosen_confirmed_unsafe", pa.bool_()),
            ("rejected_confirmed_unsafe", pa.bool_()),
        ],
        metadata={"prefloop.kind": kind},
    )


# Fixed schemas: inferring one per row group would break when a group holds only nulls.
SCHEMAS = {
    "pairwise": _pairwise(pa.string(), "pairwise"),
    "pairwise_conversational": _pairwise(_MESSAGES, "pairwise_conversational"),
    "ranking": pa.schema(
        [
            ("kind", pa.string()),
            ("schema_version", pa.string()),
            ("comparison_id", pa.int64()),
            ("judgment_id", pa.int64()),
            ("prompt", pa.string()),
            ("responses", _RESPONSES),
            ("ranks", pa.list_(pa.int64())),
            ("strength", pa.int64()),
            ("not_rankable", pa.bool_()),
            ("rater", pa.string()),
            ("campaign", pa.string()),
            ("round", pa.int64()),
            ("is_gold", pa.bool_()),
            ("weight", pa.float64()),
            ("late", pa.bool_()),
            ("created_at", pa.timestamp("us", tz="UTC")),
        ]
    ),
    "aggregated": pa.schema(
        [
            ("kind", pa.string()),
            ("schema_version", pa.string()),
            ("comparison_id", pa.int64()),
            ("prompt", pa.string()),
            ("responses", _RESPONSES),
            ("consensus_ranks", pa.list_(pa.int64())),
            ("bt_scores", pa.list_(pa.float64())),
            ("n_raters", pa.int64()),
            ("n_late", pa.int64()),
            ("agreement", pa.float64()),
            ("raters", pa.list_(pa.string())),
            ("campaign", pa.string()),
            ("round", pa.int64()),
            ("is_gold", pa.bool_()),
        ]
    ),
}


class _Drain:
    """A write-only file that keeps what was written until it is drained."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: parts are drained by the reader."""

    def drain(self) -> bytes:
        """Everything written since the last drain."""
        out = b"".join(self.parts)
        self.parts = []
        return out


def parquet_chunks(
    rows: Iterable[dict[str, Any]], *, schema: pa.Schema, row_group: int = PARQUET_ROW_GROUP
) -> Iterator[bytes]:
    """A Parquet file, one row group at a time (the footer comes last, as Parquet wants)."""
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= row_group:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            batch = []
            yield sink.drain()
    if batch:
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    writer.close()
    yield sink.drain()

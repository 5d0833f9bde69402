"""Writers that turn a stream of export rows into a stream of bytes: JSONL and Parquet.

Both hand back bytes in chunks as they go, so an HTTP response or a file grows while memory holds
one chunk (JSONL) or one row group (Parquet).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from trainer.schema import (
    AggregatedRecord,
    ConversationalPairwiseRecord,
    PairwiseRecord,
    RankingRecord,
    written_fields,
)

JSONL_CHUNK_BYTES = 256 * 1024
PARQUET_ROW_GROUP = 10_000


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode


_LITERALS = {True: "true", False: "false", None: "null"}


def _text(value: str | None, escaped: dict[str, str]) -> str:
    # Each long text is escaped once per chunk: a response recurs in every pair and judgment
    # that shows it.
    if value is None:
        return "null"
    fragment = escaped.get(value)
    if fragment is None:
        fragment = escaped[value] = _encode(value)
    return fragment


def _number(value: object) -> str:
    if type(value) is int:
        return str(value)
    return "null" if value is None else _encode(value)


def _field_json(name: str, annotation: Any) -> str:
    """The f-string piece that writes one field of a record, from the field's type."""
    key = f'"{name}":'
    value = f'row["{name}"]'
    if get_origin(annotation) is Literal and len(get_args(annotation)) == 1:
        return key + _encode(get_args(annotation)[0])  # the record's kind: a constant
    if annotation in (str, str | None):
        return key + f"{{_text({value}, escaped)}}"
    if annotation is float:
        return key + f"{{float({value})!r}}"
    if annotation is bool:
        return key + f"{{_LITERALS[{value}]}}"
    if annotation in (int, int | None, int | str, int | str | None):
        return key + f"{{_number({value})}}"
    if annotation == list[str]:
        return key + f'{{_encode({value}) if {value} else "[]"}}'
    return key + f"{{_encode({value})}}"  # anything else: the generic encoder


def line_writer(model: type[BaseModel]) -> Callable[[dict[str, Any], dict[str, str]], str]:
    """A function writing one row of `model` as a JSON line, field by field: the hot loop.

    Generated from the model's fields (as dataclasses generates __init__), so the fast path
    carries exactly the schema's fields in its order; tests check its lines parse to the rows.
    """
    fields = model.model_fields
    body = ",".join(_field_json(name, fields[name].annotation) for name in written_fields(model))
    source = f"def line(row, escaped):\n    return f'{{{{{body}}}}}'\n"
    scope: dict[str, Any] = {
        "_text": _text, "_number": _number, "_encode": _encode, "_LITERALS": _LITERALS
    }  # fmt: skip
    exec(compile(source, f"<{model.__name__} line writer>", "exec"), scope)  # noqa: S102
    line: Callable[[dict[str, Any], dict[str, str]], str] = scope["line"]
    return line


# Rows whose kind has a generated writer; the others go through the generic encoder.
LINE_WRITERS = {"pairwise": line_writer(PairwiseRecord)}


def jsonl_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """UTF-8 JSON lines, yielded in chunks of about JSONL_CHUNK_BYTES."""
    lines: list[str] = []
    escaped: dict[str, str] = {}  # cleared with each chunk, so memory stays one chunk
    size = 0
    for row in rows:
        write = LINE_WRITERS.get(row.get("kind"))  # type: ignore[arg-type]
        line = write(row, escaped) if write is not None else _encode(row)
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


_ARROW_SCALARS = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a trainer.schema field: nullable scalars, lists, nested records."""
    origin = get_origin(annotation)
    if origin is Literal:
        return pa.string()
    if origin in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if int in args:  # ids are `int | str` (a TRL file may name its own); the app's are ints
            return pa.int64()
        (only,) = args
        return arrow_type(only)
    if origin is list:
        return pa.list_(arrow_type(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct(_arrow_fields(annotation))
    return _ARROW_SCALARS[annotation]


def _arrow_fields(model: type[BaseModel]) -> list[tuple[str, pa.DataType]]:
    fields = model.model_fields
    return [(name, arrow_type(fields[name].annotation)) for name in written_fields(model)]


def arrow_schema(model: type[BaseModel], *, kind_metadata: bool = False) -> pa.Schema:
    """The Parquet schema of a record model, in the order its JSON lines carry the fields."""
    kind = get_args(model.model_fields["kind"].annotation)[0]
    return pa.schema(
        _arrow_fields(model), metadata={"prefloop.kind": kind} if kind_metadata else None
    )


# Fixed schemas: inferring one per row group would break when a group holds only nulls. The two
# pairwise kinds share their column names, so their files also name the kind in the metadata.
SCHEMAS = {
    "pairwise": arrow_schema(PairwiseRecord, kind_metadata=True),
    "pairwise_conversational": arrow_schema(ConversationalPairwiseRecord, kind_metadata=True),
    "ranking": arrow_schema(RankingRecord),
    "aggregated": arrow_schema(AggregatedRecord),
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

"""Import prompts with their responses as comparisons: parse JSONL, validate all, then write all."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from app.errors import ImportRejected, ValidationFailed
from app.models import Campaign, Comparison, ComparisonItem, Prompt, Response
from app.rendering import render_markdown
from app.services.audit import record_event
from trainer.schema import ImportRecord

MAX_IMPORT_LINES = 100_000
MAX_PROBLEMS = 1000  # past this many bad lines the file is plainly the wrong format
T = TypeVar("T")


def describe(error: ValidationError) -> str:
    """The first reason Pydantic gives, with the field it is about."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where != "record" else message


def parse_numbered(
    numbered: Iterable[tuple[int, str]], build: Callable[[Any], T]
) -> list[tuple[int, T]]:
    """(line number, record) for every JSON value; all bad lines are reported together."""
    records: list[tuple[int, T]] = []
    problems: list[tuple[int, str]] = []
    for number, raw in numbered:
        if number > MAX_IMPORT_LINES:
            raise ValidationFailed(f"more than {MAX_IMPORT_LINES} lines; split the file")
        try:
            records.append((number, build(json.loads(raw))))
        except json.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON ({exc.msg})"))
        except ValidationError as exc:
            problems.append((number, describe(exc)))
        except ValueError as exc:
            problems.append((number, str(exc)))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ImportRejected(problems)
    if not records:
        raise ValidationFailed("the file holds no records")
    return records


def jsonl_numbered(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """The non-blank lines of a JSONL file with their 1-based numbers."""
    return ((n, line) for n, line in enumerate(lines, start=1) if line.strip())


def parse_import_lines(lines: Iterable[str]) -> list[ImportRecord]:
    """Parse JSONL into records; every bad line is reported with its number, nothing else kept."""
    numbered = parse_numbered(jsonl_numbered(lines), ImportRecord.model_validate)
    check_unique_ids([(n, r.external_id) for n, r in numbered])
    return [r for _, r in numbered]


def check_unique_ids(numbered_ids: list[tuple[int, str | None]]) -> None:
    """Reject a file that repeats an external id, naming each repeating line."""
    counts = Counter(i for _, i in numbered_ids if i is not None)
    repeated = [(n, f"external_id {i} repeated in the file") for n, i in numbered_ids
                if i is not None and counts[i] > 1]  # fmt: skip
    if repeated:
        raise ImportRejected(repeated)


def existing_external_ids(session: Session, *, campaign_id: int, ids: list[str]) -> set[str]:
    """Which of `ids` this campaign already holds."""
    found: set[str] = set()
    for start in range(0, len(ids), 5000):  # bounded IN lists
        chunk = ids[start : start + 5000]
        found.update(
            session.scalars(
                select(Prompt.external_id).where(
                    Prompt.campaign_id == campaign_id, Prompt.external_id.in_(chunk)
                )
            )
        )
    return found


def _check_external_ids(session: Session, campaign: Campaign, records: list[ImportRecord]) -> None:
    check_unique_ids(list(enumerate((r.external_id for r in records), start=1)))
    ids = [r.external_id for r in records if r.external_id is not None]
    existing = existing_external_ids(session, campaign_id=campaign.id, ids=ids)
    if existing:
        raise ValidationFailed(
            f"external_id already imported in this campaign: {sorted(existing)[0]}"
            + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""),
            field="external_id",
        )


@dataclass(frozen=True)
class Written:
    """One imported comparison: its ids, and the record's response index at each position."""

    comparison_id: int
    prompt_id: int
    response_ids: list[int]  # in the comparison's canonical (position) order
    order: list[int]  # order[pos] = the record's response index shown at position pos


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """Insert many rows in a few statements; their ids in the order given."""
    if not rows:
        return []
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def write_comparisons(
    session: Session, *, campaign: Campaign, records: list[ImportRecord], seed: int | None = None
) -> list[Written]:
    """Each record as a prompt, its responses and a comparison, in a few bulk statements.

    Bulk inserts rather than one ORM object per row: 10,000 comparisons are 50,000 rows, and
    the per-object unit of work took a minute where these statements take seconds.
    """
    _check_external_ids(session, campaign, records)
    rng = random.Random(seed)
    with session.begin_nested():
        prompt_ids = _insert(session, Prompt, [
            {"campaign_id": campaign.id, "external_id": r.external_id, "text": r.prompt,
             "context": dict(r.context), "html": str(render_markdown(r.prompt))}
            for r in records])  # fmt: skip
        # Rendered and sanitised once, here: raters' pages read the stored HTML.
        response_rows = [{"prompt_id": pid, "text": resp.text, "model_label": resp.model_version,
                          "html": str(render_markdown(resp.text))}
                         for pid, r in zip(prompt_ids, records, strict=True) for resp in r.responses]  # fmt: skip
        flat = iter(_insert(session, Response, response_rows))
        response_ids = [[next(flat) for _ in r.responses] for r in records]
        # The canonical order is shuffled once here so that import order (often "ours first")
        # carries no signal; each rater then sees their own random order.
        orders = []
        for r in records:
            order = list(range(len(r.responses)))
            rng.shuffle(order)
            orders.append(order)
        comparison_rows = []
        for pid, r, order in zip(prompt_ids, records, orders, strict=True):
            gold = [r.gold_ranks[i] for i in order] if r.gold_ranks is not None else None
            comparison_rows.append({"campaign_id": campaign.id, "prompt_id": pid,
                                    "is_gold": gold is not None, "gold_ranks": gold,
                                    "priority": campaign.priority})  # fmt: skip
        comparison_ids = _insert(session, Comparison, comparison_rows)
        items = [{"comparison_id": cid, "position": pos, "response_id": rids[i]}
                 for cid, rids, order in zip(comparison_ids, response_ids, orders, strict=True)
                 for pos, i in enumerate(order)]  # fmt: skip
        if items:
            session.execute(insert(ComparisonItem), items)
    return [
        Written(cid, pid, [rids[i] for i in order], order)
        for cid, pid, rids, order in zip(
            comparison_ids, prompt_ids, response_ids, orders, strict=True
        )
    ]


def import_records(
    session: Session,
    *,
    campaign: Campaign,
    records: list[ImportRecord],
    actor_id: int | None = None,
    seed: int | None = None,
) -> list[Comparison]:
    """Write every record as a prompt, its responses and one comparison; all or nothing."""
    written = write_comparisons(session, campaign=campaign, records=records, seed=seed)
    ids = [w.comparison_id for w in written]
    loaded = {
        c.id: c
        for start in range(0, len(ids), 5000)
        for c in session.scalars(
            select(Comparison).where(Comparison.id.in_(ids[start : start + 5000]))
            .options(selectinload(Comparison.items))
        )
    }  # fmt: skip
    comparisons = [loaded[i] for i in ids]
    record_event(
        session,
        action="import.comparisons",
        actor_id=actor_id,
        target_type="campaign",
        target_id=campaign.id,
        details={"count": len(comparisons)},
    )
    return comparisons


def parse_import_csv(lines: Iterable[str]) -> list[ImportRecord]:
    """The import format as CSV: prompt, response_1..8, optional external_id, model_N, gold_ranks,
    and context_* columns; every bad row is reported with its line number."""
    import csv

    reader = csv.DictReader(lines)
    if reader.fieldnames is None or "prompt" not in reader.fieldnames:
        raise ImportRejected(
            [(1, "the header must name a 'prompt' column and response_1, response_2, ...")]
        )

    def numbered() -> Iterable[tuple[int, str]]:
        for row in reader:
            yield reader.line_num, json.dumps(_csv_record(row))

    records = parse_numbered(numbered(), ImportRecord.model_validate)
    check_unique_ids([(n, r.external_id) for n, r in records])
    return [r for _, r in records]


def _csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    responses = []
    for k in range(1, 9):
        text = row.get(f"response_{k}")
        if text:
            responses.append({"text": text, "model_version": row.get(f"model_{k}") or "unknown"})
    gold = (row.get("gold_ranks") or "").strip()
    record: dict[str, Any] = {
        "external_id": (row.get("external_id") or "").strip() or None,
        "prompt": row.get("prompt") or "",
        "responses": responses,
        "context": {k[8:]: v for k, v in row.items() if k and k.startswith("context_") and v},
    }
    if gold:
        try:
            record["gold_ranks"] = [int(x) for x in gold.split(",")]
        except ValueError:
            raise ValueError(
                "gold_ranks: give ranks as numbers separated by commas, e.g. 0,1"
            ) from None
    return record

"""Imports are all-or-nothing and name the line at fault."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Comparison, Prompt, Response
from app.services.demo import DEMO_FILE
from app.services.imports import import_records, parse_import_lines
from tests.factories import make_campaign


def _line(external_id: str, k: int = 2, **extra: object) -> str:
    responses = [{"text": f"answer {i}", "model_version": f"m{i}"} for i in range(k)]
    return json.dumps({"external_id": external_id, "prompt": "What dose?", "responses": responses, **extra})


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_import_creates_prompts_responses_and_comparisons(db: Session) -> None:
    campaign = make_campaign(db)
    records = parse_import_lines([_line("a", 2), _line("b", 4, gold_ranks=[0, 1, 1, 2])])
    comparisons = import_records(db, campaign=campaign, records=records, seed=1)
    assert [len(c.items) for c in comparisons] == [2, 4]
    gold = comparisons[1]
    assert gold.is_gold and sorted(gold.gold_ranks or []) == [0, 1, 1, 2]
    # The gold answer follows its responses through the shuffle.
    best = [item.response.text for item, rank in zip(gold.items, gold.gold_ranks or [], strict=True) if rank == 0]
    assert best == ["answer 0"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([_line("a"), "{not json"], "line 2: not valid JSON"),
        ([_line("a"), _line("b", 1)], "line 2: responses"),
        ([_line("a", 3, gold_ranks=[0, 2, 2])], "line 1: gold_ranks"),
        ([_line("a"), _line("b", extra_field=1)], "line 2: extra_field"),
    ],
)
def test_bad_lines_are_named_and_nothing_is_written(db: Session, lines: list[str], message: str) -> None:
    make_campaign(db)
    before = _count(db, Prompt)
    with pytest.raises(ValidationFailed, match=message):
        parse_import_lines(lines)
    assert _count(db, Prompt) == before


def test_duplicate_external_id_rejects_the_whole_file(db: Session) -> None:
    campaign = make_campaign(db)
    import_records(db, campaign=campaign, records=parse_import_lines([_line("a")]))
    counts = (_count(db, Prompt), _count(db, Response), _count(db, Comparison))
    with pytest.raises(ValidationFailed, match="already imported"):
        import_records(db, campaign=campaign, records=parse_import_lines([_line("b"), _line("a")]))
    assert (_count(db, Prompt), _count(db, Response), _count(db, Comparison)) == counts


def test_the_shipped_demo_file_is_valid() -> None:
    with DEMO_FILE.open(encoding="utf-8") as lines:
        records = parse_import_lines(lines)
    assert len(records) >= 30
    assert all(2 <= len(r.responses) <= 4 for r in records)
    specialties = {r.context.get("specialty") for r in records}
    assert len(specialties) >= 5

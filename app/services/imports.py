"""Import prompts with their responses as comparisons: parse JSONL, validate all, then write all."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Campaign, Comparison, ComparisonItem, Prompt, Response
from app.rendering import render_markdown
from app.services.audit import record_event
from trainer.schema import ImportRecord

MAX_IMPORT_LINES = 100_000


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    return f"{where}: {first['msg']}"


def parse_import_lines(lines: Iterable[str]) -> list[ImportRecord]:
    """Parse JSONL into records; the first bad line raises with its line number."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number > MAX_IMPORT_LINES:
            raise ValidationFailed(f"more than {MAX_IMPORT_LINES} lines; split the file")
        try:
            records.append(ImportRecord.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                f"line {number}: not valid JSON ({exc.msg})", field=f"line {number}"
            ) from exc
        except ValidationError as exc:
            raise ValidationFailed(
                f"line {number}: {_describe(exc)}", field=f"line {number}"
            ) from exc
    if not records:
        raise ValidationFailed("the file holds no records")
    return records


def _check_external_ids(session: Session, campaign: Campaign, records: list[ImportRecord]) -> None:
    ids = [r.external_id for r in records if r.external_id is not None]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValidationFailed(
            f"external_id repeated in the file: {sorted(duplicated)[0]}", field="external_id"
        )
    existing = session.scalars(
        select(Prompt.external_id).where(
            Prompt.campaign_id == campaign.id, Prompt.external_id.in_(ids)
        )
    ).first()
    if existing is not None:
        raise ValidationFailed(
            f"external_id already imported in this campaign: {existing}", field="external_id"
        )


def _add_comparison(
    session: Session, campaign: Campaign, record: ImportRecord, rng: random.Random
) -> Comparison:
    prompt = Prompt(
        campaign_id=campaign.id,
        external_id=record.external_id,
        text=record.prompt,
        html=str(render_markdown(record.prompt)),
        context=dict(record.context),
    )
    # Rendered and sanitised once, here: raters' pages read the stored HTML.
    responses = [
        Response(
            prompt=prompt,
            text=r.text,
            html=str(render_markdown(r.text)),
            model_label=r.model_version,
        )
        for r in record.responses
    ]
    # The canonical order is shuffled once here so that import order (often "ours first")
    # carries no signal; each rater then sees their own random order.
    order = list(range(len(responses)))
    rng.shuffle(order)
    gold = [record.gold_ranks[i] for i in order] if record.gold_ranks is not None else None
    comparison = Comparison(
        campaign_id=campaign.id,
        prompt=prompt,
        is_gold=gold is not None,
        gold_ranks=gold,
        priority=campaign.priority,
    )
    comparison.items = [
        ComparisonItem(position=pos, response=responses[i]) for pos, i in enumerate(order)
    ]
    session.add(comparison)
    return comparison


def import_records(
    session: Session,
    *,
    campaign: Campaign,
    records: list[ImportRecord],
    actor_id: int | None = None,
    seed: int | None = None,
) -> list[Comparison]:
    """Write every record as a prompt, its responses and one comparison; all or nothing."""
    _check_external_ids(session, campaign, records)
    rng = random.Random(seed)
    with session.begin_nested():
        comparisons = [_add_comparison(session, campaign, r, rng) for r in records]
        session.flush()
    record_event(
        session,
        action="import.comparisons",
        actor_id=actor_id,
        target_type="campaign",
        target_id=campaign.id,
        details={"count": len(comparisons)},
    )
    return comparisons

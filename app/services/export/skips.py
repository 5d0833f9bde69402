"""Skips in the ranking export: which comparisons raters gave back, why, and with what note."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.models import Assignment, Campaign, Comparison, Prompt, User
from app.models.rating import AssignmentState
from app.schemas.export import ExportQuery
from app.services.export.source import scope_filters
from trainer.schema import SCHEMA_VERSION


def _filters(query: ExportQuery) -> list[Any]:
    return [Assignment.state == AssignmentState.SKIPPED, *scope_filters(query, created=Assignment.completed_at)]


def skip_rows(session: Session, *, query: ExportQuery) -> Iterator[dict[str, Any]]:
    """One trainer.schema.SkipRecord dict per skip matching the export's filters, oldest first."""
    stmt = (
        select(
            Assignment.comparison_id,
            Prompt.text,
            Assignment.skip_reason,
            Assignment.skip_note,
            User.pseudonym,
            Campaign.name,
            Comparison.round_id,
            Comparison.is_gold,
            Assignment.completed_at,
        )
        .join(User, User.id == Assignment.rater_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(and_(*_filters(query)))
        .order_by(Assignment.completed_at, Assignment.id)
    )
    result = session.connection().execute(stmt, execution_options={"yield_per": 2000})
    for cid, prompt, reason, note, rater, campaign, rnd, gold, at in result:
        yield {
            "kind": "skip",
            "schema_version": SCHEMA_VERSION,
            "comparison_id": cid,
            "prompt": prompt,
            "reason": reason,
            "note": note,
            "rater": rater,
            "campaign": campaign,
            "round": rnd,
            "is_gold": gold,
            "created_at": at,
        }

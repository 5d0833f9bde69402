"""Bulk creation over the API: the admin import's validation and all-or-nothing rule, as JSON."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Comparison
from app.services.campaigns import get_campaign
from app.services.imports import import_records
from trainer.schema import ImportRecord


def bulk_create_comparisons(
    session: Session,
    *,
    campaign_id: int,
    records: list[ImportRecord],
    seed: int | None = None,
    actor_id: int | None = None,
) -> list[Comparison]:
    """Create a prompt, its responses and a comparison per record, all or none."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    return import_records(session, campaign=campaign, records=records, actor_id=actor_id, seed=seed)

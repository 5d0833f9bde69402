"""Campaigns: create and look up."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, ValidationFailed
from app.models import Campaign
from app.models.campaigns import DEFAULT_FLAGS
from app.services.audit import record_event
from trainer.schema import KNOWN_FLAGS


def get_campaign_by_name(session: Session, *, name: str) -> Campaign | None:
    """The campaign with this name, if any."""
    return session.scalar(select(Campaign).where(Campaign.name == name))


def create_campaign(
    session: Session,
    *,
    name: str,
    guidelines_md: str = "",
    overlap: int = 3,
    gold_rate: float = 0.0,
    priority: int = 0,
    flags: list[str] | None = None,
    actor_id: int | None = None,
) -> Campaign:
    """Create an active campaign; the unsafe and factually-wrong flags are always offered."""
    name = name.strip()
    if not name:
        raise ValidationFailed("a campaign needs a name", field="name")
    if get_campaign_by_name(session, name=name) is not None:
        raise Conflict(f"a campaign named {name!r} already exists", field="name")
    chosen = list(dict.fromkeys([*DEFAULT_FLAGS, *(flags or [])]))
    unknown = [f for f in chosen if f not in KNOWN_FLAGS]
    if unknown:
        raise ValidationFailed(f"unknown flags: {', '.join(unknown)}", field="flags")
    if not 1 <= overlap <= 50:
        raise ValidationFailed("overlap must be between 1 and 50", field="overlap")
    if not 0.0 <= gold_rate <= 1.0:
        raise ValidationFailed("gold rate must be between 0 and 1", field="gold_rate")
    campaign = Campaign(
        name=name,
        guidelines_md=guidelines_md,
        overlap=overlap,
        gold_rate=gold_rate,
        priority=priority,
        flags=chosen,
    )
    session.add(campaign)
    session.flush()
    record_event(
        session,
        action="campaign.create",
        actor_id=actor_id,
        target_type="campaign",
        target_id=campaign.id,
    )
    return campaign

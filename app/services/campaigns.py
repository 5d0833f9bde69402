"""Campaigns: create, edit and look up; one model holds every field's rule."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldErrors, NotFound
from app.models import Campaign, Comparison, Judgment
from app.models.campaigns import (
    CAMPAIGN_STATUSES,
    DEFAULT_FLAGS,
    MAX_LEASE_MINUTES,
    MAX_OVERLAP,
    MIN_LEASE_MINUTES,
    MIN_OVERLAP,
)
from app.services.audit import record_event
from trainer.schema import KNOWN_FLAGS

Aspect = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class CampaignIn(BaseModel):
    """A campaign's editable fields; the unsafe and factually-wrong flags are always offered."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    guidelines_md: str = Field("", max_length=50_000)
    overlap: int = Field(3, ge=MIN_OVERLAP, le=MAX_OVERLAP)
    gold_rate: float = Field(0.0, ge=0.0, le=1.0)
    priority: int = Field(0, ge=-1000, le=1000)
    flags: list[str] = Field(default_factory=list, validate_default=True)
    rubric: list[Aspect] = Field(default_factory=list, max_length=12)
    lease_minutes: int | None = Field(None, ge=MIN_LEASE_MINUTES, le=MAX_LEASE_MINUTES)
    status: str = "active"

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, flags: list[str]) -> list[str]:
        chosen = list(dict.fromkeys([*DEFAULT_FLAGS, *flags]))
        unknown = [f for f in chosen if f not in KNOWN_FLAGS]
        if unknown:
            raise ValueError(f"unknown flags: {', '.join(unknown)}")
        return chosen

    @field_validator("status")
    @classmethod
    def _known_status(cls, status: str) -> str:
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"status is one of {', '.join(CAMPAIGN_STATUSES)}")
        return status


def validated(values: dict[str, Any]) -> CampaignIn:
    """The fields checked together; every bad field is named (FieldErrors), none is saved."""
    try:
        return CampaignIn.model_validate(values)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
        raise FieldErrors(errors) from None


def get_campaign_by_name(session: Session, *, name: str) -> Campaign | None:
    """The campaign with this name, if any."""
    return session.scalar(select(Campaign).where(Campaign.name == name))


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    """The campaign with this id, or NotFound."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}", field="campaign_id")
    return campaign


def _check_name_free(session: Session, name: str, campaign_id: int | None) -> None:
    other = get_campaign_by_name(session, name=name)
    if other is not None and other.id != campaign_id:
        raise Conflict(f"a campaign named {name!r} already exists", field="name")


def create_campaign(session: Session, *, actor_id: int | None = None, **values: Any) -> Campaign:
    """Create a campaign (active unless told otherwise) from CampaignIn's fields."""
    data = validated(values)
    _check_name_free(session, data.name, None)
    campaign = Campaign(**data.model_dump())
    session.add(campaign)
    session.flush()
    record_event(session, action="campaign.create", actor_id=actor_id, target_type="campaign",
                 target_id=campaign.id)  # fmt: skip
    return campaign


def update_campaign(
    session: Session, *, campaign_id: int, actor_id: int | None = None, **values: Any
) -> Campaign:
    """Replace a campaign's fields, all checked first: a bad field changes nothing."""
    campaign = get_campaign(session, campaign_id=campaign_id)
    data = validated(values)
    _check_name_free(session, data.name, campaign.id)
    changed = sorted(k for k, v in data.model_dump().items() if getattr(campaign, k) != v)
    for key in changed:
        setattr(campaign, key, getattr(data, key))
    session.flush()
    record_event(session, action="campaign.update", actor_id=actor_id, target_type="campaign",
                 target_id=campaign.id, details={"changed": changed})  # fmt: skip
    return campaign


def campaign_progress(session: Session, *, campaign_id: int, overlap: int) -> list[int]:
    """How many comparisons have 0, 1, .. overlap (or more) raters' live judgments."""
    per = (
        select(Comparison.id, func.count(func.distinct(Judgment.rater_id)).label("n"))
        .outerjoin(Judgment, Judgment.comparison_id == Comparison.id)
        .where(Comparison.campaign_id == campaign_id)
        .group_by(Comparison.id)
        .subquery()
    )
    counts = [0] * (overlap + 1)
    for n, how_many in session.execute(select(per.c.n, func.count()).group_by(per.c.n)):
        counts[min(n, overlap)] += how_many
    return counts

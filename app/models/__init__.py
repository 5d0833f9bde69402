"""The ORM models, one domain a file; import them from here."""

from app.models.audit import AuditEvent
from app.models.base import Base, utcnow
from app.models.campaigns import (
    Campaign,
    CampaignTally,
    Comparison,
    ComparisonItem,
    Prompt,
    Response,
)
from app.models.rating import Assignment, Judgment
from app.models.rounds import ModelVersion, Schedule, TrainingRound
from app.models.users import ApiToken, User

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignTally",
    "Comparison",
    "ComparisonItem",
    "Judgment",
    "ModelVersion",
    "Prompt",
    "Response",
    "Schedule",
    "TrainingRound",
    "User",
    "utcnow",
]

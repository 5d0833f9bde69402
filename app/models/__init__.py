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
from app.models.quality import QualityComparison, QualityProgress, QualityTally
from app.models.rating import Assignment, Judgment, RaterTally
from app.models.review import SafetyReview
from app.models.rounds import ModelVersion, RoundStep, Schedule, TrainingRound
from app.models.users import ApiToken, Invite, LoginThrottle, User

__all__ = [
    "ApiToken",
    "Assignment",
    "AuditEvent",
    "Base",
    "Campaign",
    "CampaignTally",
    "Comparison",
    "ComparisonItem",
    "Invite",
    "Judgment",
    "LoginThrottle",
    "ModelVersion",
    "Prompt",
    "QualityComparison",
    "QualityProgress",
    "QualityTally",
    "RaterTally",
    "Response",
    "RoundStep",
    "SafetyReview",
    "Schedule",
    "TrainingRound",
    "User",
    "utcnow",
]

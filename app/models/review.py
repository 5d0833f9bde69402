"""A clinical lead's verdict on a response raters flagged unsafe."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt

CONFIRMED, DISMISSED = "confirmed", "dismissed"
REVIEW_VERDICTS = (CONFIRMED, DISMISSED)
MAX_REVIEW_NOTE = 2000  # the reviewer's note: the service and the form


class SafetyReview(CreatedAt, Base):
    """The current verdict on one response; earlier verdicts are in the audit log."""

    __tablename__ = "safety_reviews"
    __table_args__ = (
        CheckConstraint(
            "verdict IN (" + ", ".join(f"'{v}'" for v in REVIEW_VERDICTS) + ")",
            name="verdict_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(
        ForeignKey("responses.id", ondelete="CASCADE"), unique=True
    )
    verdict: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime]

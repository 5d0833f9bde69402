"""Kept quality tallies: additive sums per comparison and per campaign, so quality pages read a
campaign's figures without scanning its judgments (app.services.quality keeps them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class QualityComparison(Base):
    """One comparison's share of its campaign's tally, as last computed from its live judgments.

    Kept so that when a new judgment arrives its old share can be taken out of the campaign's
    tally and the new one put in; `agreement` is indexed for "most disagreed".
    """

    __tablename__ = "quality_comparisons"
    __table_args__ = (
        Index("ix_quality_comparisons_campaign_agreement", "campaign_id", "agreement"),
        Index("ix_quality_comparisons_agreement", "agreement"),
    )

    comparison_id: Mapped[int] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Mean agreement over the raters' pairs; None with fewer than two rankings.
    agreement: Mapped[float | None]
    rankings: Mapped[int] = mapped_column(default=0)
    tally: Mapped[dict[str, Any]]


class QualityTally(Base):
    """A campaign's quality tally: the sum of its comparisons' shares."""

    __tablename__ = "quality_tallies"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tally: Mapped[dict[str, Any]]


class QualityProgress(Base):
    """How far the tallies have read the judgments (one row): every judgment up to `judgment_id`
    is counted; later ones are picked up by the next refresh."""

    __tablename__ = "quality_progress"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False, default=1)
    judgment_id: Mapped[int] = mapped_column(default=0)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)

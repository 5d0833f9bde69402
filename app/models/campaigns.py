"""What raters judge: campaigns, prompts, responses and comparisons of 2..K responses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, CreatedAt, JSONType, one_of

CAMPAIGN_STATUSES = ("draft", "active", "paused", "archived")
DEFAULT_FLAGS = ["unsafe", "factually_wrong"]
# Raters per comparison a campaign may ask for: the check constraint, CampaignIn and the form.
MIN_OVERLAP, MAX_OVERLAP = 1, 50
# A campaign's own lease length, in minutes (CampaignIn and the form; no CHECK, see below).
MIN_LEASE_MINUTES, MAX_LEASE_MINUTES = 1, 24 * 60


class Campaign(CreatedAt, Base):
    """A body of comparisons with its guidelines, overlap, gold rate and the flags raters may set."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(
            f"overlap >= {MIN_OVERLAP} AND overlap <= {MAX_OVERLAP}", name="overlap_range"
        ),
        CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate_fraction"),
        CheckConstraint(one_of("status", CAMPAIGN_STATUSES), name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    guidelines_md: Mapped[str] = mapped_column(Text, default="")
    overlap: Mapped[int] = mapped_column(default=3)
    gold_rate: Mapped[float] = mapped_column(default=0.0)
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    flags: Mapped[list[str]] = mapped_column(JSONType, default=lambda: list(DEFAULT_FLAGS))
    rubric: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # How long a rater holds a comparison; None: the server's PREFLOOP_LEASE_MINUTES.
    # (1..1440, checked by CampaignIn: a CHECK here would make SQLite recreate the table and
    # drop its tally triggers.)
    lease_minutes: Mapped[int | None]

    prompts: Mapped[list[Prompt]] = relationship(back_populates="campaign")


class Prompt(CreatedAt, Base):
    """A patient message or clinician question, with its clinical context."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("campaign_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # `text` rendered and sanitised (app.rendering), stored the first time it is shown.
    html: Mapped[str | None] = mapped_column(Text)

    campaign: Mapped[Campaign] = relationship(back_populates="prompts")
    responses: Mapped[list[Response]] = relationship(back_populates="prompt")


class Response(CreatedAt, Base):
    """An assistant's answer to a prompt; the model that wrote it is never shown to raters."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    # `text` rendered and sanitised (app.rendering), stored at import or when first shown.
    html: Mapped[str | None] = mapped_column(Text)
    model_label: Mapped[str] = mapped_column(String(200), default="unknown")
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )

    prompt: Mapped[Prompt] = relationship(back_populates="responses")


# The comparisons that still want raters: the claim indexes' predicate.
WANTS_RATERS = "open_places > 0"


def wants_raters(comparison: type[Comparison]) -> ColumnElement[bool]:
    """SQL: `comparison` (the class or an alias of it) still wants raters.

    The 0 is a literal, as in the indexes' predicate: psycopg prepares a statement on its fifth
    run, and the generic plan PostgreSQL then keeps cannot use an index whose predicate it cannot
    prove from `open_places > $1`.
    """
    return comparison.open_places > literal_column("0")


class Comparison(CreatedAt, Base):
    """A prompt and 2..K of its responses in a stored order; gold ones carry a known ranking."""

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint(
            "(is_gold AND gold_ranks IS NOT NULL) OR (NOT is_gold AND gold_ranks IS NULL)",
            name="gold_has_answer",
        ),
        Index("ix_comparisons_campaign_priority", "campaign_id", "priority"),
        # Claiming reads the first rows of this index (see app.services.assignment): O(log N).
        # Its order is the claim's order (comparison priority, then closest to completion).
        Index(
            "ix_comparisons_open",
            "campaign_id",
            "is_gold",
            text("priority DESC"),
            "open_places",
            "id",
            postgresql_where=text(WANTS_RATERS),
            sqlite_where=text(WANTS_RATERS),
        ),
        # The claim's fallback order, freshest first (app.services.assignment._claim_statement).
        Index(
            "ix_comparisons_fresh",
            "campaign_id",
            "is_gold",
            text("priority DESC"),
            text("open_places DESC"),
            "id",
            postgresql_where=text(WANTS_RATERS),
            sqlite_where=text(WANTS_RATERS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    is_gold: Mapped[bool] = mapped_column(default=False)
    # Ranks over `items` in position order (0 best, ties equal), for gold comparisons only.
    gold_ranks: Mapped[list[int] | None] = mapped_column(JSONType)
    priority: Mapped[int] = mapped_column(default=0)
    round_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_rounds.id", ondelete="SET NULL")
    )
    # The campaign's overlap less the assignments holding a place (HOLDING_STATES). Kept by
    # database triggers in the writing transaction, whoever writes (never set it from code).
    open_places: Mapped[int] = mapped_column(default=0, server_default="0")

    prompt: Mapped[Prompt] = relationship()
    items: Mapped[list[ComparisonItem]] = relationship(
        order_by="ComparisonItem.position", cascade="all, delete-orphan"
    )


class ComparisonItem(Base):
    """One response of a comparison at its canonical position (0..K-1)."""

    __tablename__ = "comparison_items"
    __table_args__ = (
        UniqueConstraint("comparison_id", "response_id"),
        CheckConstraint("position >= 0 AND position < 16", name="position_range"),
    )

    comparison_id: Mapped[int] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))

    response: Mapped[Response] = relationship()


TALLY_SHARDS = 16


class CampaignTally(Base):
    """A shard of a campaign's open places (the progress line's "left"), kept by triggers.

    The sum over a campaign's shards is the sum of its comparisons' `open_places`. A comparison
    counts in shard `id % TALLY_SHARDS`, so concurrent claims rarely wait on one row.
    """

    __tablename__ = "campaign_tallies"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    open_places: Mapped[int] = mapped_column(default=0)

"""What raters do: assignments (leases on comparisons) and immutable judgments."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    exists,
    literal,
    text,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from app.models.base import Base, CreatedAt, JSONType, one_of
from app.models.campaigns import Comparison
from app.models.users import User


class AssignmentState(StrEnum):
    """Where a rater's assignment stands, as stored (the check constraint is built from these)."""

    LEASED = "leased"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"


# The states that hold one of a comparison's `overlap` places. A lease past its expiry is turned
# into "expired" by `release_expired_leases`, which gives its place back. The triggers of
# migration 5357ed447a48 keep `comparisons.open_places` by this rule.
HOLDING_STATES = (AssignmentState.LEASED, AssignmentState.SUBMITTED)
# A rater who submitted or skipped a comparison is done with it: never offered it again.
FINISHED_STATES = (AssignmentState.SUBMITTED, AssignmentState.SKIPPED)
MAX_RATIONALE = 5000
MAX_NOT_RANKABLE_REASON = 500
# Why a rater gave a comparison back: the code is stored, the label is what the rater read.
class SkipReason(StrEnum):
    """A reason code, as stored and as the API filters by it."""

    SPECIALTY = "specialty"
    UNCLEAR = "unclear"
    CONFLICT = "conflict"
    OTHER = "other"


SKIP_REASONS = {
    SkipReason.SPECIALTY: "Outside my specialty",
    SkipReason.UNCLEAR: "Prompt unclear or incomplete",
    SkipReason.CONFLICT: "Conflict of interest",
    SkipReason.OTHER: "Other",
}
MAX_SKIP_NOTE = 150


class Assignment(CreatedAt, Base):
    """A rater's lease on a comparison, with the display order that rater was shown."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("comparison_id", "rater_id"),
        CheckConstraint(
            one_of("state", AssignmentState),
            name="state_known",
        ),
        CheckConstraint(
            f"(state = '{AssignmentState.SKIPPED}') = (skip_reason IS NOT NULL)",
            name="skip_has_reason",
        ),
        Index("ix_assignments_rater_state", "rater_id", "state"),
        # The leases that `release_expired_leases` looks at: few, whatever the table's size.
        Index(
            "ix_assignments_leased_expiry",
            "lease_expires_at",
            postgresql_where=text(f"state = '{AssignmentState.LEASED}'"),
            sqlite_where=text(f"state = '{AssignmentState.LEASED}'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=AssignmentState.LEASED)
    # Response ids in the order this rater sees them (randomised per rater, recorded).
    display_order: Mapped[list[int]] = mapped_column(JSONType)
    lease_expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(String(200))  # a SKIP_REASONS code
    skip_note: Mapped[str | None] = mapped_column(String(MAX_SKIP_NOTE))

    comparison: Mapped[Comparison] = relationship()
    rater: Mapped[User] = relationship()

    @classmethod
    def is_done(cls) -> ColumnElement[bool]:
        """SQL: the rater is done with the comparison (submitted or skipped it)."""
        # One bound value per state, not an IN list expanded when the statement runs: the SQL
        # is then fixed, so the hot path's claim can be compiled once (app.db.run_core).
        return cls.state.in_([literal(state, String) for state in FINISHED_STATES])

    @classmethod
    def is_live_lease(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """SQL: a lease that still holds its place at `now` (leased, not yet past its expiry)."""
        return and_(cls.state == AssignmentState.LEASED, cls.lease_expires_at > now)

    @classmethod
    def is_lapsed_lease(cls, now: datetime) -> ColumnElement[bool]:
        """SQL: a lease past its expiry at `now` that has not yet been released."""
        return and_(cls.state == AssignmentState.LEASED, cls.lease_expires_at <= now)


class Judgment(CreatedAt, Base):
    """One rater's full verdict on a comparison. Never updated: a correction is a new row.

    Corrections form a chain per (comparison, rater): revision 0 is the first judgment, revision
    n+1 supersedes revision n. The unique constraints make the chain linear, so the live judgment
    is the one no other row supersedes.
    """

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("comparison_id", "rater_id", "revision"),
        UniqueConstraint("rater_id", "idempotency_key"),
        UniqueConstraint("supersedes_id"),
        CheckConstraint("revision >= 0", name="revision_nonnegative"),
        CheckConstraint("(revision = 0) = (supersedes_id IS NULL)", name="revision_chain"),
        CheckConstraint(
            "strength IS NULL OR (strength >= 0 AND strength <= 3)", name="strength_range"
        ),
        CheckConstraint("time_spent_ms IS NULL OR time_spent_ms >= 0", name="time_nonnegative"),
        CheckConstraint(
            "NOT not_rankable OR not_rankable_reason IS NOT NULL", name="not_rankable_has_reason"
        ),
        CheckConstraint(f"length(rationale) <= {MAX_RATIONALE}", name="rationale_length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="RESTRICT"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assignment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignments.id", ondelete="SET NULL")
    )
    revision: Mapped[int] = mapped_column(default=0)
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("judgments.id", ondelete="RESTRICT")
    )
    # What was shown and what the rater did, raw: response ids in display order, and
    # ranks[i] for shown_order[i] (0 best, equal ranks tie). Pairs are derived at export.
    shown_order: Mapped[list[int]] = mapped_column(JSONType)
    ranks: Mapped[list[int] | None] = mapped_column(JSONType)
    strength: Mapped[int | None]
    not_rankable: Mapped[bool] = mapped_column(default=False)
    not_rankable_reason: Mapped[str | None] = mapped_column(String(MAX_NOT_RANKABLE_REASON))
    # {response_id (as str): [flag, ...]} for the flagged responses only.
    flags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    aspects: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rationale: Mapped[str] = mapped_column(Text, default="")
    time_spent_ms: Mapped[int | None]
    idempotency_key: Mapped[str] = mapped_column(String(64))
    lease_expired: Mapped[bool] = mapped_column(default=False)
    # read_to_end[i]: whether the rater scrolled shown_order[i] to its end (a quality signal);
    # NULL when the client did not report it (the API, a browser without scripts).
    read_to_end: Mapped[list[bool] | None] = mapped_column(JSONType)

    comparison: Mapped[Comparison] = relationship()
    rater: Mapped[User] = relationship()

    @classmethod
    def is_live(cls) -> ColumnElement[bool]:
        """SQL: the judgment is live: no correction supersedes it (said here only)."""
        later = aliased(cls)
        return ~exists().where(later.supersedes_id == cls.id)


class RaterTally(Base):
    """A rater's first judgments in a campaign on one UTC day, kept by triggers on judgments.

    The progress line's "today" and "done in this campaign" are sums of these rows: bounded by
    the days and campaigns a rater worked in, not by how many judgments they made.
    """

    __tablename__ = "rater_tallies"
    __table_args__ = (Index("ix_rater_tallies_rater_id_day", "rater_id", "day"),)

    rater_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(primary_key=True)  # of created_at, in UTC
    judged: Mapped[int] = mapped_column(default=0)

"""Kept quality tallies: per comparison, per campaign, and how far they have read the judgments.

Revision ID: 56b30dbc51af
Revises: e50ade314f4d
Create Date: 2026-11-30 13:49:05.421026+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision: str = "56b30dbc51af"
down_revision: str | None = "e50ade314f4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_progress",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("judgment_id", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_quality_progress_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_progress")),
    )
    op.create_table(
        "quality_tallies",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "tally",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_quality_tallies_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_quality_tallies")),
    )
    op.create_table(
        "quality_comparisons",
        sa.Column("comparison_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Double(), nullable=True),
        sa.Column("rankings", sa.Integer(), nullable=False),
        sa.Column(
            "tally",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_quality_comparisons_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_quality_comparisons_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comparison_id", name=op.f("pk_quality_comparisons")),
    )
    op.create_index(
        "ix_quality_comparisons_agreement", "quality_comparisons", ["agreement"], unique=False
    )
    op.create_index(
        "ix_quality_comparisons_campaign_agreement",
        "quality_comparisons",
        ["campaign_id", "agreement"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_quality_comparisons_campaign_agreement", table_name="quality_comparisons")
    op.drop_index("ix_quality_comparisons_agreement", table_name="quality_comparisons")
    op.drop_table("quality_comparisons")
    op.drop_table("quality_tallies")
    op.drop_table("quality_progress")

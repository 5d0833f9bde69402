"""The claim's fallback order: open comparisons freshest first.

A rater's own done comparisons wait at the front of the claim order (fewest open places) until
others fill them; a rater working alone skipped them one by one, a cost that grew with their
history (PostgreSQL CPU per judgment from 3.4 to 43 ms over 2,000 judgments). The claim now
looks at the front of the order and otherwise takes the freshest comparison, read from this
index.

Revision ID: c4f1d2e8a7b3
Revises: a13c0e7d2b91
Create Date: 2026-11-30 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4f1d2e8a7b3"
down_revision: str | None = "a13c0e7d2b91"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index open comparisons by kind, priority, then most open places."""
    op.create_index(
        "ix_comparisons_fresh", "comparisons",
        ["campaign_id", "is_gold", sa.text("priority DESC"), sa.text("open_places DESC"), "id"],
        postgresql_where=sa.text("open_places > 0"), sqlite_where=sa.text("open_places > 0"),
    )


def downgrade() -> None:
    """Drop the fallback's index."""
    op.drop_index("ix_comparisons_fresh", table_name="comparisons")

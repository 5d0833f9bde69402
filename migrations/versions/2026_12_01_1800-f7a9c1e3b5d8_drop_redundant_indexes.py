"""Two indexes that a unique constraint's index already serves: fewer index writes a judgment.

`ix_assignments_comparison_state` (comparison_id, state) and `ix_judgments_comparison`
(comparison_id) answer nothing that `uq_assignments_comparison_id_rater_id` and
`uq_judgments_comparison_id_rater_id_revision` (comparison_id first, a handful of rows per
comparison) do not. Each judgment wrote into them three times (its insert, its assignment's
update, the next claim's insert): of ~17 index entries a judgment wrote (pg_waldump over a run of
the rating load), these three went.

Revision ID: f7a9c1e3b5d8
Revises: e3b5c7d9f2a4
Create Date: 2026-12-01 18:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f7a9c1e3b5d8"
down_revision: str | None = "e3b5c7d9f2a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_assignments_comparison_state", table_name="assignments")
    op.drop_index("ix_judgments_comparison", table_name="judgments")


def downgrade() -> None:
    op.create_index("ix_judgments_comparison", "judgments", ["comparison_id"], unique=False)
    op.create_index(
        "ix_assignments_comparison_state", "assignments", ["comparison_id", "state"], unique=False
    )

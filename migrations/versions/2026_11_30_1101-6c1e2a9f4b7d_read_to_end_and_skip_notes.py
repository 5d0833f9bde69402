"""Judgments record which responses were read to the end; skips keep reason code and note apart.

Revision ID: 6c1e2a9f4b7d
Revises: 5357ed447a48
Create Date: 2026-11-30 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6c1e2a9f4b7d"
down_revision: str | None = "5357ed447a48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The reasons as this revision knew them (a migration never imports the live constants).
_REASONS = {
    "specialty": "Outside my specialty",
    "unclear": "Prompt unclear or incomplete",
    "conflict": "Conflict of interest",
    "other": "Other",
}
_assignments = sa.table(
    "assignments",
    sa.column("skip_reason", sa.String),
    sa.column("skip_note", sa.String),
)


def upgrade() -> None:
    op.add_column(
        "judgments",
        sa.Column(
            "read_to_end",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column("assignments", sa.Column("skip_note", sa.String(length=150), nullable=True))
    # Earlier skips stored "Label: note" in skip_reason; split them into a code and a note.
    reason = _assignments.c.skip_reason
    for code, label in _REASONS.items():
        op.execute(_assignments.update().where(reason == label).values(skip_reason=code))
        op.execute(
            _assignments.update()
            .where(reason.like(f"{label}: %"))
            .values(skip_note=sa.func.substr(reason, len(label) + 3, 150), skip_reason=code)
        )
    op.execute(
        _assignments.update()
        .where(reason.is_not(None), reason.not_in(list(_REASONS)))
        .values(skip_note=sa.func.substr(reason, 1, 150), skip_reason="other")
    )


def downgrade() -> None:
    reason, note = _assignments.c.skip_reason, _assignments.c.skip_note
    for code, label in _REASONS.items():
        op.execute(
            _assignments.update()
            .where(reason == code)
            .values(
                skip_reason=sa.case(
                    (note.is_(None), label), else_=sa.func.substr(label + ": " + note, 1, 200)
                )
            )
        )
    op.drop_column("assignments", "skip_note")
    op.drop_column("judgments", "read_to_end")

"""Round steps, schedule triggers (fire once), cancel requests, unpublished model versions.

Revision ID: e50ade314f4d
Revises: 0065a49cf4a4
Create Date: 2026-11-30 11:40:38.718132+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision: str = "e50ade314f4d"
down_revision: str | None = "0065a49cf4a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "round_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "metrics",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("log_tail", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "name IN ('snapshot', 'reward', 'policy', 'gate', 'generate', 'publish')",
            name=op.f("ck_round_steps_name_known"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')",
            name=op.f("ck_round_steps_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["training_rounds.id"],
            name=op.f("fk_round_steps_round_id_training_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_round_steps")),
        sa.UniqueConstraint("round_id", "name", name=op.f("uq_round_steps_round_id_name")),
    )
    # Batch mode: SQLite (the demo database) alters tables by copying them.
    # Server defaults fill the rows that exist already.
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("created_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_schedules_created_by_id_users"),
            "users",
            ["created_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("training_rounds") as batch:
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("schedule_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("trigger", sa.String(length=64), nullable=False, server_default="admin")
        )
        batch.create_unique_constraint(
            op.f("uq_training_rounds_schedule_id_trigger"), ["schedule_id", "trigger"]
        )
        batch.create_foreign_key(
            op.f("fk_training_rounds_schedule_id_schedules"),
            "schedules",
            ["schedule_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("training_rounds") as batch:
        batch.drop_constraint(op.f("fk_training_rounds_schedule_id_schedules"), type_="foreignkey")
        batch.drop_constraint(op.f("uq_training_rounds_schedule_id_trigger"), type_="unique")
        batch.drop_column("trigger")
        batch.drop_column("schedule_id")
        batch.drop_column("cancel_requested")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint(op.f("fk_schedules_created_by_id_users"), type_="foreignkey")
        batch.drop_column("created_by_id")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("published")
    op.drop_table("round_steps")

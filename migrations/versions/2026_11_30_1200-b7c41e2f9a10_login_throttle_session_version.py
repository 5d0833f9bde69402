"""Login throttle table replaces the per-account lock; users get a session version.

Revision ID: b7c41e2f9a10
Revises: 6c1e2a9f4b7d
Create Date: 2026-11-30 11:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "b7c41e2f9a10"
down_revision: str | None = "6c1e2a9f4b7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column(
            "last_failure_at", app.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("blocked_until", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_login_throttle_failures_nonnegative")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(
        "ix_login_throttle_last_failure_at", "login_throttle", ["last_failure_at"], unique=False
    )
    # Batch mode: SQLite cannot drop a column or a constraint in place.
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch.drop_constraint(op.f("ck_users_failed_logins_nonnegative"), type_="check")
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("locked_until", app.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_check_constraint(
            op.f("ck_users_failed_logins_nonnegative"), "failed_logins >= 0"
        )
        batch.drop_column("session_version")
    op.drop_index("ix_login_throttle_last_failure_at", table_name="login_throttle")
    op.drop_table("login_throttle")

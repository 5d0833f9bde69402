"""A first judgment marks its assignment submitted, in the database.

Every judgment made its own UPDATE of the assignment after the INSERT: a statement and a round
trip of its own, ~0.5 ms of server and ~0.3 ms of PostgreSQL CPU a judgment on the 2-core bench
machine (bench/rater_cpu.py). A trigger on judgments now makes the change in the same statement,
for any writer: an assignment is submitted exactly when its first judgment (revision 0) is
recorded, at the judgment's time. Corrections (revision > 0) and judgments without an assignment
(external imports) leave assignments alone.

Revision ID: d8e2a4f6b1c9
Revises: c4f1d2e8a7b3
Create Date: 2026-12-01 11:00:00+00:00
"""

# ruff: noqa: S608 - the SQL below interpolates only this file's constants
from collections.abc import Sequence

from alembic import op

revision: str = "d8e2a4f6b1c9"
down_revision: str | None = "c4f1d2e8a7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUBMITTED = "'submitted'"  # app.models.rating.AssignmentState.SUBMITTED, as of this revision

POSTGRES_TRIGGER = f"""
CREATE FUNCTION prefloop_first_judgment_submits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE assignments SET state = {SUBMITTED}, completed_at = NEW.created_at
    WHERE id = NEW.assignment_id;
    RETURN NULL;
END $$;
CREATE TRIGGER judgments_first_submits AFTER INSERT ON judgments
    FOR EACH ROW WHEN (NEW.revision = 0 AND NEW.assignment_id IS NOT NULL)
    EXECUTE FUNCTION prefloop_first_judgment_submits();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS judgments_first_submits ON judgments;
DROP FUNCTION IF EXISTS prefloop_first_judgment_submits();
"""
SQLITE_TRIGGER = f"""CREATE TRIGGER judgments_first_submits AFTER INSERT ON judgments
WHEN NEW.revision = 0 AND NEW.assignment_id IS NOT NULL BEGIN
    UPDATE assignments SET state = {SUBMITTED}, completed_at = NEW.created_at
    WHERE id = NEW.assignment_id;
END"""


def upgrade() -> None:
    """Add the trigger."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_TRIGGER)
    else:
        op.execute(POSTGRES_TRIGGER)


def downgrade() -> None:
    """Drop the trigger: the application must mark assignments submitted again."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS judgments_first_submits")
    else:
        op.execute(POSTGRES_DROP)

"""SQLite: the campaign tally trigger works under an INSERT ... ON CONFLICT DO UPDATE.

A claim now places the rater's lease in the same statement (INSERT ... SELECT ... ON CONFLICT
DO UPDATE, app.services.assignment). On SQLite the conflict policy of the statement that fires
a trigger replaces those inside it, so the tally trigger's INSERT OR IGNORE of a missing shard
row failed with a UNIQUE error there. It now inserts the row only where it does not exist, which
needs no conflict policy. PostgreSQL's triggers are functions and are not affected.

Revision ID: e3b5c7d9f2a4
Revises: d8e2a4f6b1c9
Create Date: 2026-12-01 12:00:00+00:00
"""

# ruff: noqa: S608 - the SQL below interpolates only this file's constants
from collections.abc import Sequence

from alembic import op

revision: str = "e3b5c7d9f2a4"
down_revision: str | None = "d8e2a4f6b1c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 16  # app.models.campaigns.TALLY_SHARDS when this revision was written
_SHARD = f"NEW.id % {SHARDS}"
_UPDATE_TALLY = f"""UPDATE campaign_tallies SET open_places = open_places + NEW.open_places
            - OLD.open_places WHERE campaign_id = NEW.campaign_id AND shard = {_SHARD};"""
_HEAD = """CREATE TRIGGER comparisons_tally_update AFTER UPDATE OF open_places ON comparisons
    WHEN NEW.open_places <> OLD.open_places BEGIN"""
TRIGGER = f"""{_HEAD}
        INSERT INTO campaign_tallies (campaign_id, shard, open_places)
            SELECT NEW.campaign_id, {_SHARD}, 0 WHERE NOT EXISTS (SELECT 1 FROM campaign_tallies
            WHERE campaign_id = NEW.campaign_id AND shard = {_SHARD});
        {_UPDATE_TALLY}
    END"""
PREVIOUS = f"""{_HEAD}
        INSERT OR IGNORE INTO campaign_tallies (campaign_id, shard, open_places)
            VALUES (NEW.campaign_id, {_SHARD}, 0);
        {_UPDATE_TALLY}
    END"""


def _replace(trigger: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS comparisons_tally_update")
        op.execute(trigger)


def upgrade() -> None:
    """SQLite: the tally trigger without INSERT OR IGNORE."""
    _replace(TRIGGER)


def downgrade() -> None:
    """SQLite: the tally trigger as it was."""
    _replace(PREVIOUS)

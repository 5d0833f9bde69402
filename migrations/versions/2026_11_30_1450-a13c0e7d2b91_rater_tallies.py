"""Kept per-rater counts: first judgments per rater, campaign and UTC day (the progress line).

The rating page showed "today" and "done in this campaign" by counting the rater's judgments on
every page: a cost that grew with the rater's history (PostgreSQL CPU per judgment from 2.1 to
3.3 ms over 500 judgments each by three raters, flat at ~2.1 ms with the kept counts). Triggers on judgments keep `rater_tallies` in the writing transaction, like
`campaign_tallies`; statement-level on PostgreSQL so that a bulk import updates each row once.

Revision ID: a13c0e7d2b91
Revises: 56b30dbc51af
Create Date: 2026-11-30 14:50:00+00:00
"""

# ruff: noqa: S608 - the SQL below interpolates only this file's constants
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a13c0e7d2b91"
down_revision: str | None = "56b30dbc51af"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only first judgments (revision 0) count: a correction is not a new judgment.
POSTGRES_TRIGGERS = """
CREATE FUNCTION prefloop_rater_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rater_tallies (rater_id, campaign_id, day, judged)
    SELECT n.rater_id, c.campaign_id, (n.created_at AT TIME ZONE 'UTC')::date, count(*)
    FROM new_rows n JOIN comparisons c ON c.id = n.comparison_id
    WHERE n.revision = 0 GROUP BY 1, 2, 3
    ON CONFLICT (rater_id, campaign_id, day)
    DO UPDATE SET judged = rater_tallies.judged + EXCLUDED.judged;
    RETURN NULL;
END $$;
CREATE TRIGGER judgments_rater_tally_insert AFTER INSERT ON judgments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION prefloop_rater_tally_insert();

CREATE FUNCTION prefloop_rater_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rater_tallies t SET judged = t.judged - d.judged
    FROM (SELECT o.rater_id, c.campaign_id, (o.created_at AT TIME ZONE 'UTC')::date AS day,
                 count(*) AS judged
          FROM old_rows o JOIN comparisons c ON c.id = o.comparison_id
          WHERE o.revision = 0 GROUP BY 1, 2, 3) d
    WHERE t.rater_id = d.rater_id AND t.campaign_id = d.campaign_id AND t.day = d.day;
    RETURN NULL;
END $$;
CREATE TRIGGER judgments_rater_tally_delete AFTER DELETE ON judgments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION prefloop_rater_tally_delete();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS judgments_rater_tally_insert ON judgments;
DROP TRIGGER IF EXISTS judgments_rater_tally_delete ON judgments;
DROP FUNCTION IF EXISTS prefloop_rater_tally_insert();
DROP FUNCTION IF EXISTS prefloop_rater_tally_delete();
"""
# SQLite: row triggers (the demo's scale); its timestamps are stored as UTC text.
_SQLITE_DAY = "date(ROW.created_at)"
_SQLITE_CAMPAIGN = "(SELECT campaign_id FROM comparisons WHERE id = ROW.comparison_id)"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER judgments_rater_tally_insert AFTER INSERT ON judgments
    WHEN NEW.revision = 0 BEGIN
        INSERT OR IGNORE INTO rater_tallies (rater_id, campaign_id, day, judged)
            VALUES (NEW.rater_id, {_SQLITE_CAMPAIGN}, {_SQLITE_DAY}, 0);
        UPDATE rater_tallies SET judged = judged + 1 WHERE rater_id = NEW.rater_id
            AND campaign_id = {_SQLITE_CAMPAIGN} AND day = {_SQLITE_DAY};
    END""".replace("ROW.", "NEW."),
    f"""CREATE TRIGGER judgments_rater_tally_delete AFTER DELETE ON judgments
    WHEN OLD.revision = 0 BEGIN
        UPDATE rater_tallies SET judged = judged - 1 WHERE rater_id = OLD.rater_id
            AND campaign_id = {_SQLITE_CAMPAIGN} AND day = {_SQLITE_DAY};
    END""".replace("ROW.", "OLD."),
]
SQLITE_TRIGGER_NAMES = ["judgments_rater_tally_insert", "judgments_rater_tally_delete"]
BACKFILL = {
    "postgresql": "(j.created_at AT TIME ZONE 'UTC')::date",
    "sqlite": "date(j.created_at)",
}


def upgrade() -> None:
    """Create the kept counts, fill them from the judgments so far, add the triggers."""
    dialect = op.get_bind().dialect.name
    op.create_table(
        "rater_tallies",
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("judged", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"],
            name=op.f("fk_rater_tallies_campaign_id_campaigns"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"], ["users.id"],
            name=op.f("fk_rater_tallies_rater_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rater_id", "campaign_id", "day", name=op.f("pk_rater_tallies")),
    )
    op.create_index("ix_rater_tallies_rater_id_day", "rater_tallies", ["rater_id", "day"])
    day = BACKFILL.get(dialect, BACKFILL["sqlite"])
    op.execute(
        "INSERT INTO rater_tallies (rater_id, campaign_id, day, judged)"
        f" SELECT j.rater_id, c.campaign_id, {day}, count(*) FROM judgments j"
        " JOIN comparisons c ON c.id = j.comparison_id WHERE j.revision = 0 GROUP BY 1, 2, 3"
    )
    if dialect == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(POSTGRES_TRIGGERS)


def downgrade() -> None:
    """Drop the triggers and the kept counts."""
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute(POSTGRES_DROP)
    op.drop_index("ix_rater_tallies_rater_id_day", table_name="rater_tallies")
    op.drop_table("rater_tallies")

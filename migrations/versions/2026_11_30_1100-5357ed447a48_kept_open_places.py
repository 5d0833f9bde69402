"""Rating at scale: kept open places per comparison and campaign, expired leases, stored HTML.

`comparisons.open_places` (overlap less the assignments holding a place) and the campaign's
sharded sum in `campaign_tallies` are kept by triggers in the writing transaction, so that every
writer (web, API, imports, admin, worker) keeps them exact; a partial index on the comparisons
with open places makes claiming O(log N). A lease past its expiry becomes the state "expired"
(app.services.assignment.release_expired_leases), which gives its place back.

Revision ID: 5357ed447a48
Revises: 57285bd91ff8
Create Date: 2026-11-30 11:00:00+00:00
"""

# ruff: noqa: S608 - the SQL below interpolates only this file's constants (SHARDS, HOLDING)
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5357ed447a48"
down_revision: str | None = "57285bd91ff8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARDS = 16  # app.models.campaigns.TALLY_SHARDS when this revision was written
HOLDING = "('leased', 'submitted')"  # app.models.rating.HOLDING_STATES, likewise

POSTGRES_TRIGGERS = f"""
CREATE FUNCTION prefloop_comparison_inserting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.open_places := (SELECT overlap FROM campaigns WHERE id = NEW.campaign_id);
    RETURN NEW;
END $$;
CREATE TRIGGER comparisons_open_places_start BEFORE INSERT ON comparisons
    FOR EACH ROW EXECUTE FUNCTION prefloop_comparison_inserting();

-- Statement-level, over transition tables: a bulk insert (an import of 300,000 comparisons)
-- updates each tally shard once, not once per row (which also left a version chain per shard
-- that every later update in the transaction walked: quadratic).
CREATE FUNCTION prefloop_comparisons_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_tallies (campaign_id, shard, open_places)
    SELECT campaign_id, id % {SHARDS}, sum(open_places) FROM new_rows GROUP BY 1, 2
    ON CONFLICT (campaign_id, shard)
    DO UPDATE SET open_places = campaign_tallies.open_places + EXCLUDED.open_places;
    RETURN NULL;
END $$;
CREATE TRIGGER comparisons_tally_insert AFTER INSERT ON comparisons
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION prefloop_comparisons_tally_insert();

CREATE FUNCTION prefloop_comparisons_tally_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_tallies (campaign_id, shard, open_places)
    SELECT n.campaign_id, n.id % {SHARDS}, sum(n.open_places - o.open_places)
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.open_places <> o.open_places GROUP BY 1, 2
    ON CONFLICT (campaign_id, shard)
    DO UPDATE SET open_places = campaign_tallies.open_places + EXCLUDED.open_places;
    RETURN NULL;
END $$;
CREATE TRIGGER comparisons_tally_update AFTER UPDATE ON comparisons
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION prefloop_comparisons_tally_update();

-- Only an update: when the campaign itself is being deleted, its shards are going too.
CREATE FUNCTION prefloop_comparisons_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaign_tallies t SET open_places = t.open_places - d.places
    FROM (SELECT campaign_id, id % {SHARDS} AS shard, sum(open_places) AS places
          FROM old_rows GROUP BY 1, 2) d
    WHERE t.campaign_id = d.campaign_id AND t.shard = d.shard;
    RETURN NULL;
END $$;
CREATE TRIGGER comparisons_tally_delete AFTER DELETE ON comparisons
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION prefloop_comparisons_tally_delete();

CREATE FUNCTION prefloop_assignment_places() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta integer := 0;
    comparison integer;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        comparison := OLD.comparison_id;
        IF OLD.state IN {HOLDING} THEN delta := delta + 1; END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        comparison := NEW.comparison_id;
        IF NEW.state IN {HOLDING} THEN delta := delta - 1; END IF;
    END IF;
    IF delta <> 0 THEN
        UPDATE comparisons SET open_places = open_places + delta WHERE id = comparison;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER assignments_places AFTER INSERT OR DELETE OR UPDATE OF state ON assignments
    FOR EACH ROW EXECUTE FUNCTION prefloop_assignment_places();

CREATE FUNCTION prefloop_campaign_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE comparisons SET open_places = open_places + NEW.overlap - OLD.overlap
    WHERE campaign_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_overlap AFTER UPDATE OF overlap ON campaigns
    FOR EACH ROW WHEN (OLD.overlap <> NEW.overlap) EXECUTE FUNCTION prefloop_campaign_overlap();
"""

POSTGRES_DROP = """
DROP TRIGGER IF EXISTS campaigns_overlap ON campaigns;
DROP TRIGGER IF EXISTS assignments_places ON assignments;
DROP TRIGGER IF EXISTS comparisons_tally_insert ON comparisons;
DROP TRIGGER IF EXISTS comparisons_tally_update ON comparisons;
DROP TRIGGER IF EXISTS comparisons_tally_delete ON comparisons;
DROP TRIGGER IF EXISTS comparisons_open_places_start ON comparisons;
DROP FUNCTION IF EXISTS prefloop_campaign_overlap();
DROP FUNCTION IF EXISTS prefloop_assignment_places();
DROP FUNCTION IF EXISTS prefloop_comparisons_tally_insert();
DROP FUNCTION IF EXISTS prefloop_comparisons_tally_update();
DROP FUNCTION IF EXISTS prefloop_comparisons_tally_delete();
DROP FUNCTION IF EXISTS prefloop_comparison_inserting();
"""

# SQLite: no functions, and a trigger cannot change NEW; the same rules as separate triggers.
# (A batch migration that recreates one of these tables drops its triggers: recreate them.)
_SQLITE_TALLY = f"""
    INSERT OR IGNORE INTO campaign_tallies (campaign_id, shard, open_places)
        VALUES (ROW.campaign_id, ROW.id % {SHARDS}, 0);
    UPDATE campaign_tallies SET open_places = open_places + (DELTA)
        WHERE campaign_id = ROW.campaign_id AND shard = ROW.id % {SHARDS};
"""
SQLITE_TRIGGERS = [
    """CREATE TRIGGER comparisons_open_places_start AFTER INSERT ON comparisons BEGIN
        UPDATE comparisons SET open_places = (SELECT overlap FROM campaigns
            WHERE id = NEW.campaign_id) WHERE id = NEW.id;
    END""",
    # The insert trigger's UPDATE above fires this one: the tally gets the starting places.
    f"""CREATE TRIGGER comparisons_tally_update AFTER UPDATE OF open_places ON comparisons
    WHEN NEW.open_places <> OLD.open_places BEGIN
        {_SQLITE_TALLY.replace("ROW.", "NEW.").replace("DELTA", "NEW.open_places - OLD.open_places")}
    END""",
    f"""CREATE TRIGGER comparisons_tally_delete AFTER DELETE ON comparisons BEGIN
        UPDATE campaign_tallies SET open_places = open_places - OLD.open_places
            WHERE campaign_id = OLD.campaign_id AND shard = OLD.id % {SHARDS};
    END""",
    f"""CREATE TRIGGER assignments_places_insert AFTER INSERT ON assignments
    WHEN NEW.state IN {HOLDING} BEGIN
        UPDATE comparisons SET open_places = open_places - 1 WHERE id = NEW.comparison_id;
    END""",
    f"""CREATE TRIGGER assignments_places_delete AFTER DELETE ON assignments
    WHEN OLD.state IN {HOLDING} BEGIN
        UPDATE comparisons SET open_places = open_places + 1 WHERE id = OLD.comparison_id;
    END""",
    f"""CREATE TRIGGER assignments_places_update AFTER UPDATE OF state ON assignments
    WHEN (OLD.state IN {HOLDING}) <> (NEW.state IN {HOLDING}) BEGIN
        UPDATE comparisons SET open_places = open_places
            + (CASE WHEN NEW.state IN {HOLDING} THEN -1 ELSE 1 END)
            WHERE id = NEW.comparison_id;
    END""",
    """CREATE TRIGGER campaigns_overlap AFTER UPDATE OF overlap ON campaigns
    WHEN OLD.overlap <> NEW.overlap BEGIN
        UPDATE comparisons SET open_places = open_places + NEW.overlap - OLD.overlap
            WHERE campaign_id = NEW.id;
    END""",
]
SQLITE_TRIGGER_NAMES = [
    "comparisons_open_places_start", "comparisons_tally_update", "comparisons_tally_delete",
    "assignments_places_insert", "assignments_places_delete", "assignments_places_update",
    "campaigns_overlap",
]

BACKFILL = [
    # Leases already past their expiry give their places back.
    "UPDATE assignments SET state = 'expired'"
    " WHERE state = 'leased' AND lease_expires_at <= CURRENT_TIMESTAMP",
    f"""UPDATE comparisons SET open_places = (SELECT overlap FROM campaigns
        WHERE campaigns.id = comparisons.campaign_id) - (SELECT count(*) FROM assignments
        WHERE assignments.comparison_id = comparisons.id AND assignments.state IN {HOLDING})""",
    f"""INSERT INTO campaign_tallies (campaign_id, shard, open_places)
        SELECT campaign_id, id % {SHARDS}, sum(open_places) FROM comparisons
        GROUP BY campaign_id, id % {SHARDS}""",
]


def upgrade() -> None:
    """Add the kept counts, their index and triggers; backfill them; add the HTML columns."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "campaign_tallies",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("open_places", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"],
            name=op.f("fk_campaign_tallies_campaign_id_campaigns"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "shard", name=op.f("pk_campaign_tallies")),
    )
    with op.batch_alter_table("assignments") as batch:
        batch.drop_constraint(op.f("ck_assignments_state_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_assignments_state_known"),
            "state IN ('leased', 'submitted', 'skipped', 'expired')",
        )
        batch.create_index(
            "ix_assignments_leased_expiry", ["lease_expires_at"],
            postgresql_where=sa.text("state = 'leased'"), sqlite_where=sa.text("state = 'leased'"),
        )
    with op.batch_alter_table("comparisons") as batch:
        batch.add_column(sa.Column("open_places", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("html", sa.Text(), nullable=True))
    for statement in BACKFILL:
        op.execute(statement)
    op.create_index(
        "ix_comparisons_open", "comparisons",
        ["campaign_id", "is_gold", sa.text("priority DESC"), "open_places", "id"],
        postgresql_where=sa.text("open_places > 0"), sqlite_where=sa.text("open_places > 0"),
    )
    if sqlite:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(POSTGRES_TRIGGERS)


def downgrade() -> None:
    """Drop the triggers, counts and HTML columns; expired leases become plain leases again."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute(POSTGRES_DROP)
    op.drop_index("ix_comparisons_open", table_name="comparisons")
    op.execute("UPDATE assignments SET state = 'leased' WHERE state = 'expired'")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("html")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("html")
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("open_places")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_index("ix_assignments_leased_expiry")
        batch.drop_constraint(op.f("ck_assignments_state_known"), type_="check")
        batch.create_check_constraint(
            op.f("ck_assignments_state_known"), "state IN ('leased', 'submitted', 'skipped')"
        )
    op.drop_table("campaign_tallies")

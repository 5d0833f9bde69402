"""Kept counts: every writer keeps `open_places` and the campaign tally equal to a recount."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.db import build_engine
from app.migrate import upgrade
from app.models import Campaign, Comparison, utcnow
from app.services.assignment import (
    next_assignment,
    progress,
    release_expired_leases,
    skip_assignment,
)
from app.services.judgments import JudgmentInput, submit_judgment
from tests.factories import make_campaign, make_comparisons, make_raters
from tests.support import assert_counts_match_a_recount


def _every_writer(session: Session) -> None:
    """Claims, a skip, submits, an expiry, a renewal, an overlap change, a deletion."""
    campaign = make_campaign(session, overlap=2)
    other = make_campaign(session, overlap=3)
    make_comparisons(session, campaign, count=5)
    doomed = make_comparisons(session, other, count=3)
    raters = make_raters(session, 4)
    assert_counts_match_a_recount(session)
    first = next_assignment(session, rater=raters[0])
    assert first is not None
    assert_counts_match_a_recount(session)
    skip_assignment(session, rater=raters[0], assignment_id=first.id, reason="other")
    assert_counts_match_a_recount(session)
    for n, rater in enumerate(raters[1:]):
        held = next_assignment(session, rater=rater)
        assert held is not None
        submit_judgment(session, rater=rater, assignment_id=held.id,
                        data=JudgmentInput(idempotency_key=f"kept-{n}-{held.id}", scale=1))
    assert_counts_match_a_recount(session)
    lease = next_assignment(session, rater=raters[0])
    assert lease is not None
    later = utcnow() + timedelta(hours=1)
    assert release_expired_leases(session, now=later) == 1
    session.refresh(lease)
    assert lease.state == "expired"
    assert_counts_match_a_recount(session)
    again = next_assignment(session, rater=raters[0], now=later)  # the rater's own, renewed
    assert again is not None and again.id == lease.id and again.state == "leased"
    assert_counts_match_a_recount(session)
    campaign.overlap = 3
    session.flush()
    assert_counts_match_a_recount(session)
    session.execute(delete(Comparison).where(Comparison.id == doomed[0].id))
    assert_counts_match_a_recount(session)
    session.execute(delete(Campaign).where(Campaign.id == other.id))  # cascades, as an admin's would
    assert_counts_match_a_recount(session)
    left = progress(session, rater=raters[0], campaign_id=campaign.id, now=later).left
    assert left == 5 * 3 - 4 + 1  # open places, plus the one the rater holds


def test_every_writer_keeps_the_counts_on_postgresql(db: Session) -> None:
    _every_writer(db)


def test_every_writer_keeps_the_counts_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)  # the triggers come from the migration, as on the demo
    engine = build_engine(url)
    try:
        with Session(engine) as session, session.begin():
            _every_writer(session)
    finally:
        engine.dispose()


def test_the_migration_backfills_counts_from_existing_assignments(db: Session) -> None:
    # What the migration's backfill computes is what the triggers keep: checked by recount on
    # data written before the counts existed is covered by test_migrations' upgrade; here the
    # recount itself is checked to fail when a count drifts.
    campaign = make_campaign(db, overlap=2)
    [comparison] = make_comparisons(db, campaign)
    db.execute(Comparison.__table__.update().values(open_places=7))
    with pytest.raises(AssertionError):
        assert_counts_match_a_recount(db)
    assert comparison.id

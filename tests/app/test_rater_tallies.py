"""The progress line's per-rater counts are kept by triggers, equal to a recount, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.db import build_engine
from app.migrate import upgrade
from app.models import Campaign, Judgment, RaterTally, User
from app.services.assignment import progress
from tests.factories import make_campaign, make_comparisons, make_judgment, make_user


def _kept(db: Session, rater_id: int) -> dict[tuple[int, str], int]:
    rows = db.execute(
        select(RaterTally.campaign_id, RaterTally.day, RaterTally.judged).where(
            RaterTally.rater_id == rater_id, RaterTally.judged != 0
        )
    )
    return {(campaign, str(day)): judged for campaign, day, judged in rows}


def _scenario(db: Session) -> tuple[int, int, int]:
    """Three first judgments in one campaign (one of them yesterday), one in another, a correction."""
    first, second = make_campaign(db), make_campaign(db)
    rater = make_user(db)
    here = make_comparisons(db, first, count=3)
    there = make_comparisons(db, second, count=1)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    judged = [make_judgment(db, c, rater) for c in here[:2]]
    make_judgment(db, here[2], rater, created_at=yesterday)
    make_judgment(db, there[0], rater)
    make_judgment(db, here[0], rater, supersedes=judged[0])  # a correction: not a new judgment
    return rater.id, first.id, second.id


def test_progress_counts_first_judgments_today_and_in_the_campaign(db: Session) -> None:
    rater_id, first, second = _scenario(db)
    rater = db.get_one(User, rater_id)
    mine = progress(db, rater=rater, campaign_id=first)
    assert (mine.done_today, mine.done_in_campaign) == (3, 3)  # 2 + 1 here today, 3 here in all
    assert progress(db, rater=rater, campaign_id=second).done_in_campaign == 1


def test_the_kept_counts_equal_a_recount_after_a_bulk_insert_and_a_delete(db: Session) -> None:
    rater_id, first, _second = _scenario(db)
    rater = db.get_one(User, rater_id)
    more = make_comparisons(db, db.get_one(Campaign, first), count=3)
    rows = [
        {"comparison_id": c.id, "rater_id": rater_id, "revision": 0,
         "idempotency_key": f"bulk-{c.id}", "shown_order": [i.response_id for i in c.items],
         "ranks": [0, 1]}
        for c in more
    ]
    db.execute(insert(Judgment), rows)  # one statement, several rows: each counts once
    db.execute(Judgment.__table__.delete().where(Judgment.idempotency_key == f"bulk-{more[0].id}"))
    recount = db.execute(
        select(Judgment.comparison_id, Judgment.created_at).where(
            Judgment.rater_id == rater_id, Judgment.revision == 0
        )
    ).all()
    assert sum(_kept(db, rater_id).values()) == len(recount) == 6
    assert progress(db, rater=rater, campaign_id=first).done_in_campaign == 5


def test_sqlite_keeps_the_same_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tallies.db'}"
    upgrade(url)
    engine = build_engine(url)
    with Session(engine) as db:
        rater_id, first, second = _scenario(db)
        db.commit()
        today = str(datetime.now(UTC).date())
        kept = _kept(db, rater_id)
        assert kept[(first, today)] == 2 and kept[(second, today)] == 1
        assert sum(kept.values()) == db.scalar(
            select(func.count()).where(Judgment.rater_id == rater_id, Judgment.revision == 0)
        )
    engine.dispose()

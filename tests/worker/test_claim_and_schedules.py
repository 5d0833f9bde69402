"""Claiming rounds and firing schedules with several workers at once, on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.db import build_engine
from app.errors import ValidationFailed
from app.migrate import upgrade
from app.models import Schedule, TrainingRound, utcnow
from app.services.rounds import cancel_round, queue_round
from app.services.schedules import create_schedule, fire_due_schedules, set_schedule_active
from app.worker.lease import claim_round, renew_lease
from tests.factories import make_campaign, make_comparisons, make_judgment, make_raters

WORKERS = 6


def _at_once(engine: Engine, job: Callable[[Session, int], object], workers: int = WORKERS) -> list:
    """Run `job(session, worker_number)` in `workers` threads released together; their results."""
    start, results, errors = threading.Barrier(workers), [], []

    def run(n: int) -> None:
        try:
            start.wait()
            with Session(engine, expire_on_commit=False) as session, session.begin():
                results.append(job(session, n))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def _claim(session: Session, n: int) -> int | None:
    found = claim_round(session, worker_id=f"w{n}", lease_seconds=60, max_attempts=3)
    return None if found is None else found.id


@pytest.fixture(params=["postgresql", "sqlite"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """A committed engine on each database prefloop supports."""
    if request.param == "postgresql":
        return request.getfixturevalue("committed_engine")
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)
    return build_engine(url)


def test_six_workers_claim_four_rounds_each_exactly_once(any_engine: Engine) -> None:
    with Session(any_engine) as session, session.begin():
        campaign = make_campaign(session)
        ids = [queue_round(session, campaign_id=campaign.id).id for _ in range(4)]
    claimed = _at_once(any_engine, _claim)
    assert sorted(c for c in claimed if c is not None) == ids
    with Session(any_engine) as session:
        rounds = session.scalars(select(TrainingRound)).all()
        assert {r.status for r in rounds} == {"running"}
        assert len({r.worker_id for r in rounds}) == 4 and {r.attempts for r in rounds} == {1}


def test_an_expired_lease_is_taken_over_and_a_round_lost_too_often_fails(committed_engine: Engine) -> None:
    with Session(committed_engine) as session, session.begin():
        round_id = queue_round(session, campaign_id=make_campaign(session).id).id
    with Session(committed_engine) as session, session.begin():
        assert _claim(session, 1) == round_id
        assert _claim(session, 2) is None  # held: nobody else gets it
    for attempt in (2, 3):
        with Session(committed_engine) as session, session.begin():  # the holder died
            session.get_one(TrainingRound, round_id).lease_expires_at = utcnow() - timedelta(seconds=1)
        with Session(committed_engine) as session, session.begin():
            assert _claim(session, attempt) == round_id
            found = session.get_one(TrainingRound, round_id)
            assert (found.worker_id, found.attempts) == (f"w{attempt}", attempt)
            # The old holder's heartbeat now finds the lease gone and stops.
            assert renew_lease(session, round_id=round_id, worker_id="w1", lease_seconds=60) == (False, False)
    with Session(committed_engine) as session, session.begin():
        session.get_one(TrainingRound, round_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    with Session(committed_engine) as session, session.begin():
        assert _claim(session, 4) is None
        found = session.get_one(TrainingRound, round_id)
        assert found.status == "failed" and "3 workers held this round" in (found.error or "")


def test_cancel_a_queued_round_now_and_a_running_one_at_the_heartbeat(db: Session) -> None:
    campaign = make_campaign(db)
    queued = queue_round(db, campaign_id=campaign.id)
    running = queue_round(db, campaign_id=campaign.id)
    assert claim_round(db, worker_id="w", lease_seconds=60, max_attempts=3).id == queued.id
    assert cancel_round(db, round_id=queued.id, actor_id=None).status == "running"
    assert renew_lease(db, round_id=queued.id, worker_id="w", lease_seconds=60) == (True, True)
    assert cancel_round(db, round_id=running.id, actor_id=None).status == "cancelled"
    assert claim_round(db, worker_id="w2", lease_seconds=60, max_attempts=3) is None


def _judge(session: Session, campaign_id: int, count: int) -> None:
    from app.models import Campaign

    campaign = session.get_one(Campaign, campaign_id)
    rater = make_raters(session, 1)[0]
    for comparison in make_comparisons(session, campaign, count=count):
        make_judgment(session, comparison, rater)


def test_every_n_judgments_queues_one_round_whoever_evaluates(any_engine: Engine) -> None:
    with Session(any_engine) as session, session.begin():
        campaign_id = make_campaign(session).id
        _judge(session, campaign_id, 2)  # before the schedule: not counted
        schedule_id = create_schedule(session, campaign_id=campaign_id, every_n_judgments=3).id
        _judge(session, campaign_id, 2)
    assert _at_once(any_engine, lambda s, n: len(fire_due_schedules(s))) == [0] * WORKERS
    with Session(any_engine) as session, session.begin():
        _judge(session, campaign_id, 1)
    fired = _at_once(any_engine, lambda s, n: len(fire_due_schedules(s)))
    assert sorted(fired) == [0] * (WORKERS - 1) + [1]
    with Session(any_engine) as session:
        (only,) = session.scalars(select(TrainingRound)).all()
        assert (only.schedule_id, only.trigger, only.status) == (schedule_id, f"judgments:{session.get_one(Schedule, schedule_id).last_judgment_id}", "queued")


def test_a_cron_schedule_fires_once_for_all_missed_times_and_not_while_paused(committed_engine: Engine) -> None:
    now = utcnow()
    with Session(committed_engine) as session, session.begin():
        campaign_id = make_campaign(session).id
        schedule_id = create_schedule(session, campaign_id=campaign_id, cron="*/5 * * * *",
                                      now=now - timedelta(hours=1)).id
        paused = create_schedule(session, campaign_id=campaign_id, cron="* * * * *",
                                 now=now - timedelta(hours=1))
        set_schedule_active(session, schedule_id=paused.id, active=False, actor_id=None)
    fired = _at_once(committed_engine, lambda s, n: [r.trigger for r in fire_due_schedules(s, now=now)])
    triggers = [t for batch in fired for t in batch]
    assert len(triggers) == 1 and triggers[0].startswith("cron:")
    with Session(committed_engine) as session, session.begin():
        last = session.get_one(Schedule, schedule_id).last_fired_at
        assert now - timedelta(minutes=5) < last <= now  # the latest missed time, not the first
        for r in session.scalars(select(TrainingRound)):
            r.status = "succeeded"
    with Session(committed_engine) as session, session.begin():
        assert fire_due_schedules(session, now=now) == []  # nothing new is due yet
        again = fire_due_schedules(session, now=now + timedelta(minutes=5))
        assert len(again) == 1 and again[0].trigger != triggers[0]
    with Session(committed_engine) as session:
        counts = Counter(r.schedule_id for r in session.scalars(select(TrainingRound)))
    assert counts == {schedule_id: 2}


def test_a_bad_cron_expression_is_refused(db: Session) -> None:
    with pytest.raises(ValidationFailed) as err:
        create_schedule(db, campaign_id=make_campaign(db).id, cron="every tuesday")
    assert err.value.field == "cron"


def test_a_schedule_with_an_unknown_method_is_refused_when_made_not_when_it_fires(db: Session) -> None:
    campaign = make_campaign(db)
    with pytest.raises(ValidationFailed) as err:
        create_schedule(db, campaign_id=campaign.id, every_n_judgments=5, method="grpo")
    assert err.value.field == "method"
    assert db.scalars(select(Schedule).where(Schedule.campaign_id == campaign.id)).all() == []

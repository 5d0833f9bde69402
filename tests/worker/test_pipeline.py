"""The pipeline's bookkeeping with stand-in steps (no trainer): resume, cancel, lost lease, failure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from app.db import get_engine, get_sessionmaker, worker_sessionmaker
from app.models import RoundStep, TrainingRound, utcnow
from app.models.rounds import STEP_NAMES
from app.services.rounds import cancel_round, queue_round
from app.worker.loop import work_once
from app.worker.pipeline import RoundContext, StepResult
from tests.factories import make_campaign

Steps = dict[str, Callable[[RoundContext], StepResult]]


def _steps(calls: list[str], before: Callable[[str, RoundContext], None] | None = None) -> Steps:
    def make(name: str) -> Callable[[RoundContext], StepResult]:
        def step(ctx: RoundContext) -> StepResult:
            if before is not None:
                before(name, ctx)
            calls.append(name)
            return StepResult({"done": name})
        return step
    return {name: make(name) for name in STEP_NAMES}


@pytest.fixture
def round_id(committed_engine: Engine) -> int:
    with Session(committed_engine) as session, session.begin():
        return queue_round(session, campaign_id=make_campaign(session).id).id


def _statuses(engine: Engine, rid: int) -> list[str]:
    with Session(engine) as session:
        rows = session.scalars(select(RoundStep).where(RoundStep.round_id == rid).order_by(RoundStep.position))
        return [r.status for r in rows]


def test_a_round_runs_every_step_once_and_records_it(committed_engine: Engine, round_id: int) -> None:
    calls: list[str] = []
    assert work_once(get_sessionmaker(), "w", _steps(calls)) == "succeeded"
    assert calls == list(STEP_NAMES) and _statuses(committed_engine, round_id) == ["succeeded"] * 6
    with Session(committed_engine) as session:
        done = session.get_one(TrainingRound, round_id)
        assert (done.status, done.progress, done.lease_expires_at) == ("succeeded", 1.0, None)


def test_a_takeover_resumes_after_the_last_completed_step(committed_engine: Engine, round_id: int) -> None:
    def die_at_policy(name: str, ctx: RoundContext) -> None:
        if name == "policy":
            raise KeyboardInterrupt  # the worker dies: nothing after this is recorded

    first: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        work_once(get_sessionmaker(), "w1", _steps(first, die_at_policy))
    assert _statuses(committed_engine, round_id) == ["succeeded", "succeeded", "running", "pending", "pending", "pending"]
    with committed_engine.begin() as conn:  # its lease runs out
        conn.execute(update(TrainingRound).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    second: list[str] = []
    assert work_once(get_sessionmaker(), "w2", _steps(second)) == "succeeded"
    assert second == ["policy", "gate", "generate", "publish"]
    with Session(committed_engine) as session:
        assert session.get_one(TrainingRound, round_id).attempts == 2


def test_cancel_stops_a_running_round_at_the_next_step_boundary(committed_engine: Engine, round_id: int) -> None:
    def cancel_during_reward(name: str, ctx: RoundContext) -> None:
        if name == "reward":
            with Session(committed_engine) as session, session.begin():
                cancel_round(session, round_id=round_id, actor_id=None)

    calls: list[str] = []
    assert work_once(get_sessionmaker(), "w", _steps(calls, cancel_during_reward)) == "cancelled"
    assert calls == ["snapshot", "reward"]  # reward finished; policy never started
    assert _statuses(committed_engine, round_id) == ["succeeded", "succeeded"] + ["skipped"] * 4


def test_a_worker_that_lost_its_lease_writes_nothing_more(committed_engine: Engine, round_id: int) -> None:
    def taken_over_during_gate(name: str, ctx: RoundContext) -> None:
        if name == "gate":
            with committed_engine.begin() as conn:
                conn.execute(update(TrainingRound).values(worker_id="someone-else"))

    calls: list[str] = []
    assert work_once(get_sessionmaker(), "w", _steps(calls, taken_over_during_gate)) == "lost"
    assert calls == ["snapshot", "reward", "policy", "gate"]
    assert _statuses(committed_engine, round_id)[3:] == ["running", "pending", "pending"]


def test_a_step_that_raises_fails_the_round_with_its_reason(committed_engine: Engine, round_id: int) -> None:
    def nan(name: str, ctx: RoundContext) -> None:
        if name == "policy":
            raise FloatingPointError("loss is NaN at step 3")

    assert work_once(get_sessionmaker(), "w", _steps([], nan)) == "failed"
    with Session(committed_engine) as session:
        failed = session.get_one(TrainingRound, round_id)
        assert failed.error == "FloatingPointError: loss is NaN at step 3"
        step = session.scalar(select(RoundStep).where(RoundStep.round_id == round_id, RoundStep.name == "policy"))
        assert step.status == "failed" and "Traceback" in step.log_tail and "NaN" in step.log_tail
    assert _statuses(committed_engine, round_id)[3:] == ["skipped"] * 3


def test_the_worker_reconnects_when_the_database_drops_its_connections(committed_engine: Engine, round_id: int) -> None:
    from sqlalchemy import create_engine, text

    def drop_every_connection(name: str, ctx: RoundContext) -> None:
        if name == "reward":  # as a PostgreSQL restart would: every session of the database ends
            killer = create_engine(committed_engine.url.render_as_string(hide_password=False))
            with killer.connect() as conn:
                killed = conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
            killer.dispose()
            assert killed >= 1  # the worker's pooled connections

    calls: list[str] = []
    # The worker's own sessions (as `prefloop worker` makes them) ping on every checkout.
    assert work_once(worker_sessionmaker(), "w", _steps(calls, drop_every_connection)) == "succeeded"
    # Every connection to the database ended, the app's pooled ones too (the engine may have
    # been rebuilt since `committed_engine` was made): start the next test with fresh ones.
    committed_engine.dispose()
    get_engine().dispose()
    assert calls == list(STEP_NAMES) and _statuses(committed_engine, round_id) == ["succeeded"] * 6

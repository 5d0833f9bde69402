"""Faults: a worker SIGKILLed mid-round is taken over; failing steps fail the round with the reason."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import get_sessionmaker
from app.models import Comparison, ModelVersion, TrainingRound, utcnow
from app.services.rounds import queue_round
from app.worker.loop import work_once
from tests.factories import CONFIG, make_campaign
from tests.support import judged_campaign, round_step, start_worker


def test_a_worker_killed_mid_round_is_taken_over_and_nothing_is_registered_twice(
    committed_engine: Engine, worker_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(committed_engine) as session, session.begin():
        round_id = queue_round(session, campaign_id=judged_campaign(session), config=CONFIG).id
    first = start_worker(worker_env, tmp_path / "a.log", name="worker-a")
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # kill it once its policy trainer is running
        with Session(committed_engine) as session:
            policy = round_step(session, round_id, "policy")
            if policy is not None and policy.status == "running":
                reward_done = round_step(session, round_id, "reward").finished_at
                break
        assert first.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
        time.sleep(0.5)
    else:
        pytest.fail("the policy step never started")
    time.sleep(2)  # let its trainer subprocess start writing
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    with Session(committed_engine) as session:
        held = session.get_one(TrainingRound, round_id)
        assert (held.status, held.worker_id) == ("running", "worker-a")
        wait = (held.lease_expires_at - utcnow()).total_seconds()
    time.sleep(max(0.0, wait) + 0.5)  # the lease runs out: nobody renews it
    second = start_worker(worker_env, tmp_path / "b.log", name="worker-b")
    assert second.wait(timeout=600) == 0, (tmp_path / "b.log").read_text()[-3000:]
    with Session(committed_engine) as session:
        done = session.get_one(TrainingRound, round_id)
        assert (done.status, done.worker_id, done.attempts) == ("succeeded", "worker-b", 2), done.error
        assert round_step(session, round_id, "reward").finished_at == reward_done  # resumed, not rerun
        versions = session.scalars(select(ModelVersion).where(ModelVersion.round_id == round_id)).all()
        assert sorted(v.kind for v in versions) == ["policy", "reward"]
        assert all(Path(v.path, "config.json").is_file() for v in versions)
        new = session.scalar(select(func.count(Comparison.id)).where(Comparison.round_id == round_id))
        assert new == CONFIG["generate_prompts"]
    assert not list((Path(worker_env["PREFLOOP_MODEL_DIR"]) / "rounds" / str(round_id)).glob("*.partial"))


def test_a_failing_trainer_fails_its_round_with_the_reason_and_the_next_round_still_runs(
    committed_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFLOOP_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("PREFLOOP_REWARD_MODEL", str(tmp_path / "no-such-model"))
    get_settings.cache_clear()
    with Session(committed_engine) as session, session.begin():
        broken = queue_round(session, campaign_id=judged_campaign(session), config=CONFIG).id
        empty = queue_round(session, campaign_id=make_campaign(session).id).id
    try:
        assert work_once(get_sessionmaker(), "w") == "failed"
        assert work_once(get_sessionmaker(), "w") == "failed"
    finally:
        get_settings.cache_clear()
    with Session(committed_engine) as session:
        failed = session.get_one(TrainingRound, broken)
        assert failed.status == "failed" and "trainer exited with code 1" in (failed.error or "")
        step = round_step(session, broken, "reward")
        assert step.status == "failed" and "no-such-model" in step.log_tail
        assert [round_step(session, broken, n).status for n in ("snapshot", "policy", "publish")] == [
            "succeeded", "skipped", "skipped"]
        nothing = session.get_one(TrainingRound, empty)
        assert nothing.status == "failed" and "no judgments" in (nothing.error or "")
        assert session.scalar(select(func.count(ModelVersion.id))) == 0

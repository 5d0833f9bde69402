"""PostgreSQL restarted while a worker process runs a round (tiny models): it reconnects and
finishes the round; nothing is registered twice and no round is left "running"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from app.models import Comparison, ModelVersion, TrainingRound
from app.services.rounds import queue_round
from tests.factories import CONFIG
from tests.faults.cluster import Cluster
from tests.support import (
    LEASE_SECONDS,
    judged_campaign,
    round_step,
    start_worker,
    worker_environment,
)

pytestmark = pytest.mark.fault
# Longer than the lease: the worker's heartbeat fails until its lease has run out, so the outage
# cannot pass unnoticed between two heartbeats.
OUTAGE_SECONDS = LEASE_SECONDS + 4


@pytest.fixture
def engine(fault_db: str) -> Iterator[Engine]:
    made = create_engine(fault_db, pool_pre_ping=True)
    yield made
    made.dispose()


def _wait_for_policy_step(engine: Engine, round_id: int, worker, log: Path) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        with Session(engine) as session:
            policy = round_step(session, round_id, "policy")
            if policy is not None and policy.status == "running":
                return
        assert worker.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    pytest.fail("the policy step never started")


def test_postgres_restarted_mid_round_the_worker_reconnects_and_finishes_it(
    cluster: Cluster, fault_db: str, engine: Engine, tmp_path: Path, tiny_policy_dir: Path, tiny_bert_dir: Path
) -> None:
    with Session(engine) as session, session.begin():
        round_id = queue_round(session, campaign_id=judged_campaign(session), config=CONFIG).id
    env = worker_environment(fault_db, tmp_path / "artifacts", tiny_policy_dir, tiny_bert_dir)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, name="worker-a")
    try:
        _wait_for_policy_step(engine, round_id, worker, log)
        with Session(engine) as session:
            reward_done = round_step(session, round_id, "reward").finished_at
        engine.dispose()
        cluster.pg_ctl("stop", "-m", "fast")  # every connection ends, as in a real restart
        time.sleep(OUTAGE_SECONDS)
        cluster.pg_ctl("start")
        assert worker.wait(timeout=600) == 0, log.read_text()[-4000:]  # it never died
    finally:
        if worker.poll() is None:
            worker.kill()
    output = log.read_text()
    assert "heartbeat failed" in output  # the outage hit the round, not an idle worker
    with Session(engine) as session:
        done = session.get_one(TrainingRound, round_id)
        # Its lease ran out during the outage; the same worker claimed the round again and
        # resumed it from the step the outage interrupted.
        assert (done.status, done.worker_id, done.attempts) == ("succeeded", "worker-a", 2), (done.error, output[-3000:])
        assert round_step(session, round_id, "reward").finished_at == reward_done  # not rerun
        versions = session.scalars(select(ModelVersion).where(ModelVersion.round_id == round_id)).all()
        assert sorted(v.kind for v in versions) == ["policy", "reward"]
        added = session.scalar(select(func.count(Comparison.id)).where(Comparison.round_id == round_id))
        assert added == CONFIG["generate_prompts"]
        running = session.scalar(select(func.count(TrainingRound.id)).where(TrainingRound.status == "running"))
        assert running == 0

"""Helpers tests share beyond building rows: running `prefloop`, reading an export back,
recounting kept counters, starting a worker process."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Campaign, CampaignTally, Comparison, RoundStep
from app.models.rating import HOLDING_STATES
from app.schemas.export import ExportQuery
from app.services.export import export_bytes

REPO = Path(__file__).resolve().parents[1]
PREFLOOP = [sys.executable, "-c", "from app.cli import main; main()"]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    args: list[str], *, url: str, env: str = "test", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `prefloop ARGS` against `url`."""
    environ = {**os.environ, "PREFLOOP_DATABASE_URL": url, "PREFLOOP_ENV": env}
    return subprocess.run(
        [*PREFLOOP, *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def export_rows(db, batch_rows: int = 2000, **options) -> list[dict]:
    """Run the export into memory and parse it (JSONL or Parquet) into dicts."""
    query = ExportQuery(**options)
    data = b"".join(export_bytes(db, query=query, batch_rows=batch_rows))
    if query.format == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    return [json.loads(line) for line in data.decode().splitlines()]


def assert_counts_match_a_recount(session: Session) -> None:
    """open_places = overlap - holders for every comparison; each campaign's tally is their sum."""
    session.flush()
    holders = (
        select(func.count(Assignment.id))
        .where(Assignment.comparison_id == Comparison.id, Assignment.state.in_(HOLDING_STATES))
        .correlate(Comparison)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Comparison.id, Comparison.open_places, Campaign.overlap - holders)
        .join(Campaign, Campaign.id == Comparison.campaign_id)
    ).all()
    assert [(cid, kept) for cid, kept, _ in rows] == [(cid, counted) for cid, _, counted in rows]
    sums = dict(session.execute(
        select(Comparison.campaign_id, func.sum(Comparison.open_places)).group_by(
            Comparison.campaign_id)).all())
    tallies = dict(session.execute(
        select(CampaignTally.campaign_id, func.sum(CampaignTally.open_places)).group_by(
            CampaignTally.campaign_id)).all())
    assert {k: v for k, v in tallies.items() if k in sums} == sums


LEASE_SECONDS = 6  # a worker's lease in tests: short, so that takeovers happen in seconds


def worker_environment(url: str, artifacts: Path, policy: Path, reward: Path) -> dict[str, str]:
    """The environment of a worker process on `url`: tiny models, short leases, one thread."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFLOOP_ENV": "test",
        "PREFLOOP_DATABASE_URL": url,
        "PREFLOOP_MODEL_DIR": str(artifacts),
        "PREFLOOP_POLICY_MODEL": str(policy),
        "PREFLOOP_REWARD_MODEL": str(reward),
        "PREFLOOP_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "PREFLOOP_WORKER_POLL_SECONDS": "0.5",
        # One thread per process: the shared CPUs are oversubscribed otherwise.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def judged_campaign(session: Session) -> int:
    """A campaign whose seeded comparisons are all judged (GOOD preferred)."""
    from tests.factories import GOOD, make_campaign, make_judgment, make_raters, seed_comparisons

    campaign = make_campaign(session, overlap=1)
    seed_comparisons(session, campaign)
    rater = make_raters(session, 1)[0]
    for comparison in session.scalars(select(Comparison).where(Comparison.campaign_id == campaign.id)):
        texts = [item.response.text for item in comparison.items]
        make_judgment(session, comparison, rater, ranks=[0, 1] if GOOD in texts[0] else [1, 0])
    return campaign.id


def round_step(session: Session, round_id: int, name: str) -> RoundStep | None:
    """A round's step by name."""
    return session.scalar(select(RoundStep).where(RoundStep.round_id == round_id, RoundStep.name == name))


def start_worker(env: dict[str, str], log: Path, *, until_idle: bool = True, name: str = "w") -> subprocess.Popen[bytes]:
    """`prefloop worker` as its own process, its output in `log`."""
    args = [sys.executable, "-c", "from app.cli import main; main()", "worker", "--worker-id", name]
    if until_idle:
        args.append("--until-idle")
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

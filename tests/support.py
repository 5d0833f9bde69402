"""Helpers tests share beyond building rows: running `prefloop`, reading an export back,
recounting kept counters, starting a worker process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Campaign, CampaignTally, Comparison
from app.models.rating import HOLDING_STATES
from app.schemas.export import ExportQuery
from app.services.export import export_bytes

REPO = Path(__file__).resolve().parents[1]
PREFLOOP = [sys.executable, "-c", "from app.cli import main; main()"]


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


def start_worker(env: dict[str, str], log: Path, *, until_idle: bool = True, name: str = "w") -> subprocess.Popen[bytes]:
    """`prefloop worker` as its own process, its output in `log`."""
    args = [sys.executable, "-c", "from app.cli import main; main()", "worker", "--worker-id", name]
    if until_idle:
        args.append("--until-idle")
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

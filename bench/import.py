"""Benchmark: import N comparisons (the admin import's path: parse, validate, write) on PostgreSQL.

    .venv/bin/python bench/import.py --comparisons 10000

Creates a scratch database (dropped at the end), then times, in one transaction each:
1. a JSONL file of N synthetic 2-way records through `parse_import_lines` + `import_records`;
2. the shipped HH-RLHF file (1,835 pairs, with their judgments) through `import_hh_rlhf`.
Prints wall and CPU seconds and comparisons per second.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless" / "pairs.jsonl.gz"


def _lines(n: int) -> list[str]:
    return [
        json.dumps({"external_id": f"bench-{i}", "prompt": f"Patient {i}: chest pain on exertion?",
                    "context": {"specialty": "cardiology"},
                    "responses": [{"text": f"Answer A {i}: see a doctor today.", "model_version": "a"},
                                  {"text": f"Answer B {i}: rest first.", "model_version": "b"}]})
        + "\n"
        for i in range(n)
    ]  # fmt: skip


def _timed(label: str, count: int, run: object) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    run()  # type: ignore[operator]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label}: {count:,} comparisons in {wall:.2f} s wall ({cpu:.2f} s CPU) = "
          f"{count / wall:,.0f}/s")  # fmt: skip


def main() -> None:
    """Run the benchmark and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--comparisons", type=int, default=10_000)
    args = parser.parse_args()
    name = f"prefloop_bench_import_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    os.environ["PREFLOOP_DATABASE_URL"] = url
    try:
        from sqlalchemy.orm import Session

        from app.db import build_engine
        from app.migrate import upgrade
        from app.services.campaigns import create_campaign
        from app.services.external_imports import import_hh_rlhf
        from app.services.imports import import_records, parse_import_lines

        upgrade(url)
        engine = build_engine(url)
        lines = _lines(args.comparisons)

        def jsonl() -> None:
            with Session(engine) as session, session.begin():
                campaign = create_campaign(session, name="bench")
                import_records(session, campaign=campaign, records=parse_import_lines(lines))

        _timed("JSONL import", args.comparisons, jsonl)
        with gzip.open(HH, "rt", encoding="utf-8") as fh:
            hh = fh.readlines()

        def hh_rlhf() -> None:
            with Session(engine) as session, session.begin():
                campaign = create_campaign(session, name="hh")
                import_hh_rlhf(session, campaign_id=campaign.id, lines=hh)

        _timed("HH-RLHF import (+ a judgment each)", len(hh), hh_rlhf)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()

"""Benchmark: the admin quality pages at 3,000 / 30,000 / 300,000 judgments on PostgreSQL.

    PYTHONPATH=$PWD .venv/bin/python bench/quality.py --judgments 3000,30000,300000

For each size it builds a scratch database (bench/rater_load.py's campaign of two-way
comparisons, 100 raters, three judgments a comparison with random orders, flags and times over
60 days), logs an admin in through the login form, and times what an admin waits for:
`/admin/quality` for all campaigns and for the campaign, and `/admin/raters` (median of
--repeats), then the same page after 100 new judgments, in CPU seconds of the app's process
(the pages run in-process through a TestClient; PostgreSQL's own time is not in them). Where the figures are kept
(app.services.quality.refresh), the one-time count of a database that predates them is timed
apart; it is what `prefloop quality refresh` does after an upgrade or a very large import.
Run from a checkout without kept figures, the same script times the pages recomputing.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RATERS = 100
OVERLAP = 3
HTML = {"Accept": "text/html"}


def add_judgments(dsn: str, *, offset: int, limit: int, rater_shift: int) -> None:
    """One judgment on each of `limit` comparisons (from the `offset`-th) by the rater
    `rater_shift` places along, random order, a flag one time in ten, 5-120 s."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO judgments (comparison_id, rater_id, revision, shown_order, ranks,"
            " not_rankable, flags, aspects, rationale, time_spent_ms, idempotency_key,"
            " lease_expired, created_at)"
            " SELECT c.id, u.first + (c.id + %(shift)s) %% %(raters)s, 0, s.shown,"
            "  CASE WHEN random() < 0.7 THEN '[0, 1]'::jsonb ELSE '[1, 0]'::jsonb END, false,"
            "  CASE WHEN random() < 0.1 THEN jsonb_build_object(s.shown->>0, '[\"unsafe\"]'::jsonb)"
            "   ELSE '{}'::jsonb END, '{}', '', 5000 + (random() * 115000)::int,"
            "  'bench-' || c.id || '-' || %(shift)s, false,"
            "  now() - (random() * interval '60 days')"
            " FROM (SELECT id FROM comparisons ORDER BY id OFFSET %(offset)s LIMIT %(limit)s) c"
            " CROSS JOIN (SELECT min(id) AS first FROM users WHERE role = 'rater') u"
            " CROSS JOIN LATERAL (SELECT jsonb_agg(response_id ORDER BY position) AS shown"
            "  FROM comparison_items WHERE comparison_id = c.id) s",
            {"shift": rater_shift, "raters": RATERS, "offset": offset, "limit": limit},
        )
        conn.execute("ANALYZE judgments")


def admin_client(url: str):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from app.db import get_sessionmaker
    from app.main import create_app
    from app.services.users import create_user

    with get_sessionmaker()() as session, session.begin():
        create_user(session, email="admin@bench.example", password="bench-password-long-enough",
                    role="admin")  # fmt: skip
    client = TestClient(create_app())
    page = client.get("/login", headers=HTML).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/login", headers=HTML, follow_redirects=False,
                data={"email": "admin@bench.example", "password": "bench-password-long-enough",
                      "csrf_token": token, "next": "/admin"})  # fmt: skip
    return client


def timed_get(client, path: str) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds the app spent on one page (the client is in-process and cheap); steadier
    than wall time on a shared machine."""
    start = time.process_time()
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.status_code)
    return time.process_time() - start


def count_once() -> float | None:
    """Count a database that predates the kept figures, as `prefloop quality refresh` does;
    None when this checkout recomputes per page."""
    try:
        from app.services.quality import refresh
    except ImportError:
        return None
    from app.db import get_sessionmaker

    start = time.process_time()
    while True:
        with get_sessionmaker()() as session, session.begin():
            if refresh(session).caught_up:
                break
    return time.process_time() - start


def run_size(judgments: int, repeats: int) -> dict[str, float | None]:
    from rater_load import build_database

    from app.db import get_engine

    name = f"prefloop_bench_quality_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    os.environ["PREFLOOP_DATABASE_URL"] = url
    _reset_caches()
    try:
        comparisons = judgments // OVERLAP
        build_database(url, comparisons=comparisons, raters=RATERS, overlap=OVERLAP, seed=0)
        for k in range(OVERLAP):
            add_judgments(dsn, offset=0, limit=comparisons, rater_shift=k * 33)
        client = admin_client(url)
        out: dict[str, float | None] = {"count once": count_once()}
        with psycopg.connect(dsn) as conn:
            campaign_id = conn.execute("SELECT min(id) FROM campaigns").fetchone()[0]  # type: ignore[index]
        pages = {"quality (all)": "/admin/quality",
                 "quality (campaign)": f"/admin/quality?campaign_id={campaign_id}",
                 "raters": "/admin/raters"}  # fmt: skip
        for label, path in pages.items():
            out[label] = statistics.median(timed_get(client, path) for _ in range(repeats))
        add_judgments(dsn, offset=0, limit=100, rater_shift=OVERLAP * 33)
        out["after 100 new"] = timed_get(client, pages["quality (campaign)"])
        return out
    finally:
        get_engine().dispose()
        _reset_caches()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_caches() -> None:
    from app.config import get_settings
    from app.db import get_engine, get_sessionmaker

    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgments", default="3000,30000,300000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PREFLOOP_ENV", "test")
    columns = ["count once", "quality (all)", "quality (campaign)", "raters", "after 100 new"]
    print("| judgments | " + " | ".join(f"{c} (CPU s)" for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for size in (int(s) for s in args.judgments.split(",")):
        row = run_size(size, args.repeats)
        cells = ["—" if row[c] is None else f"{row[c]:.3f}" for c in columns]
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

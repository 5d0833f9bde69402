"""Benchmark: export N judgments (pairwise JSONL) from PostgreSQL against COPY of the same rows.

    .venv/bin/python bench/export.py --judgments 1000000

Creates its own scratch database (dropped at the end unless --keep), bulk-loads it with COPY,
then runs the export in a fresh child process so that its peak RSS is the export's alone, and
times PostgreSQL's own `COPY (SELECT ...) TO STDOUT` of the same rows as the physical reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RATERS = 30
OVERLAP = 3
WORDS = [
    "the",
    "patient",
    "reports",
    "chest",
    "pain",
    "on",
    "exertion",
    "relieved",
    "by",
    "rest",
    "consider",
    "stable",
    "angina",
]


def _text(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 13) % len(WORDS)] for i in range(words))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(url: str, judgments: int) -> None:
    """Fill the scratch database with `judgments` live judgments, OVERLAP per comparison, by COPY."""
    comparisons = -(-judgments // OVERLAP)
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO campaigns (name, guidelines_md, overlap, gold_rate, priority, "
            "status, flags, rubric, created_at) VALUES ('bench', '', 3, 0, 0, 'active', "
            "'[\"unsafe\"]', '[]', now())"
        )
        with cur.copy(
            "COPY users (email, display_name, role, password_hash, pseudonym, active, "
            "session_version, created_at) FROM STDIN"
        ) as copy:
            for r in range(RATERS):
                copy.write_row(
                    (
                        f"r{r}@bench.org",
                        f"r{r}",
                        "rater",
                        "x",
                        f"r-{r:08x}",
                        True,
                        0,
                        "2026-01-01T00:00:00Z",
                    )
                )
        with cur.copy(
            "COPY prompts (id, campaign_id, external_id, text, context, created_at) FROM STDIN"
        ) as copy:
            for c in range(1, comparisons + 1):
                copy.write_row(
                    (c, 1, f"p{c}", f"Q{c}: " + _text(c, 40), "{}", "2026-01-01T00:00:00Z")
                )
        with cur.copy(
            "COPY responses (id, prompt_id, text, model_label, created_at) FROM STDIN"
        ) as copy:
            for c in range(1, comparisons + 1):
                for k in range(2):
                    copy.write_row(
                        (
                            2 * c - 1 + k,
                            c,
                            f"A{k}: " + _text(c + k, 120),
                            f"m{k}",
                            "2026-01-01T00:00:00Z",
                        )
                    )
        with cur.copy(
            "COPY comparisons (id, campaign_id, prompt_id, is_gold, priority, created_at) "
            "FROM STDIN"
        ) as copy:
            for c in range(1, comparisons + 1):
                copy.write_row((c, 1, c, False, 0, "2026-01-01T00:00:00Z"))
        with cur.copy(
            "COPY comparison_items (comparison_id, position, response_id) FROM STDIN"
        ) as copy:
            for c in range(1, comparisons + 1):
                copy.write_row((c, 0, 2 * c - 1))
                copy.write_row((c, 1, 2 * c))
        with cur.copy(
            "COPY judgments (comparison_id, rater_id, revision, shown_order, ranks, "
            "strength, not_rankable, flags, aspects, rationale, time_spent_ms, "
            "idempotency_key, lease_expired, created_at) FROM STDIN"
        ) as copy:
            for j in range(judgments):
                c = j // OVERLAP + 1
                rater = (c + j % OVERLAP) % RATERS + 1
                shown = [2 * c - 1, 2 * c] if j % 2 else [2 * c, 2 * c - 1]
                ranks = [0, 1] if (c + j) % 3 else [1, 0]
                flags = json.dumps({str(shown[1]): ["unsafe"]}) if j % 10 == 0 else "{}"
                copy.write_row(
                    (
                        c,
                        rater,
                        0,
                        json.dumps(shown),
                        json.dumps(ranks),
                        j % 4,
                        False,
                        flags,
                        "{}",
                        "",
                        30000,
                        f"k{j}",
                        False,
                        "2026-01-02T00:00:00Z",
                    )
                )
        for table in ("prompts", "responses", "comparisons"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


def _copy(url: str, sql: str) -> tuple[int, float]:
    rows = 0
    start = time.perf_counter()
    with (
        psycopg.connect(_libpq(url)) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY ({sql}) TO STDOUT") as copy,
    ):
        for block in copy:
            rows += bytes(block).count(b"\n")
    return rows, time.perf_counter() - start


def reference_queries() -> dict[str, str]:
    """The export's own judgment query, alone and with each row's prompt and response texts."""
    from sqlalchemy.dialects import postgresql

    from app.schemas.export import ExportQuery
    from app.services.export.source import judgment_select

    compiled = judgment_select(ExportQuery()).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    sql = str(compiled)
    head = "SELECT judgments.id,"
    subquery = (
        "(SELECT array_agg(r.text ORDER BY ci.position) FROM comparison_items ci "
        "JOIN responses r ON r.id = ci.response_id WHERE ci.comparison_id = judgments.comparison_id)"
    )
    grouped = (
        "JOIN (SELECT ci.comparison_id AS cid, array_agg(r.text ORDER BY ci.position) AS texts "
        "FROM comparison_items ci JOIN responses r ON r.id = ci.response_id "
        "GROUP BY ci.comparison_id) AS t ON t.cid = judgments.comparison_id WHERE"
    )
    # Join prompts before adding the subquery, whose own WHERE would otherwise come first.
    with_prompt = sql.replace(
        "WHERE", "JOIN prompts ON prompts.id = comparisons.prompt_id WHERE", 1
    )
    return {
        "judgments only (no texts)": sql,
        "with texts (correlated subquery)": with_prompt.replace(
            head, f"SELECT prompts.text, {subquery}, judgments.id,", 1
        ),
        "with texts (grouped join)": with_prompt.replace(
            head, "SELECT prompts.text, t.texts, judgments.id,", 1
        ).replace("JOIN prompts", grouped.removesuffix(" WHERE") + " JOIN prompts", 1),
    }


def export_child(url: str, out: str) -> None:
    """Run our export path to `out` and print rows, seconds and peak RSS as JSON."""
    from sqlalchemy.orm import Session

    from app.db import build_engine
    from app.schemas.export import ExportQuery
    from app.services.export import export_bytes

    engine = build_engine(url)
    start = time.perf_counter()
    lines = 0
    with Session(engine) as session, session.begin(), open(out, "wb") as fh:
        for chunk in export_bytes(session, query=ExportQuery(shape="pairwise", format="jsonl")):
            lines += chunk.count(b"\n")
            fh.write(chunk)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": lines, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    """Create, load, export, compare, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--export-child", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return
    name = f"prefloop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        from app.migrate import upgrade

        upgrade(url)
        start = time.perf_counter()
        load(url, args.judgments)
        print(f"loaded {args.judgments:,} judgments by COPY in {time.perf_counter() - start:.1f} s")
        references = {name: _copy(url, sql) for name, sql in reference_queries().items()}
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "pairwise.jsonl")
            child = subprocess.run(
                [sys.executable, __file__, "--export-child", url, out],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            size_mb = Path(out).stat().st_size / 1e6
        ours = result["rows"] / result["seconds"]
        for label, (rows, seconds) in references.items():
            print(
                f"COPY (SELECT ...) TO STDOUT, {label}: {rows:,} rows in {seconds:.2f} s "
                f"= {rows / seconds:,.0f} rows/s"
            )
        # The reference is the faster way PostgreSQL itself emits the same rows, texts included.
        best = max(r / s for key, (r, s) in references.items() if key.startswith("with texts"))
        print(
            f"prefloop export (pairwise JSONL, {size_mb:.0f} MB): {result['rows']:,} rows in "
            f"{result['seconds']:.2f} s = {ours:,.0f} rows/s"
        )
        print(
            f"ratio to COPY of the same rows: {ours / best:.2f}x   "
            f"peak RSS of the export process: {result['peak_mb']:.0f} MB"
        )
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()

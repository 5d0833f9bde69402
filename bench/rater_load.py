"""Benchmark: C physicians rating at once against a real `prefloop serve` on PostgreSQL.

    PYTHONPATH=$PWD .venv/bin/python bench/rater_load.py --comparisons 30000 --workers 2 \
        --concurrency 1,10,100,300 --duration 15

Creates its own scratch database (dropped at the end unless --keep) with a campaign of N two-way
comparisons of 150-300-word markdown responses (bulk INSERT ... SELECT generate_series, seconds
even at 300,000), starts `prefloop serve --workers W` on a free loopback port, logs C raters in
through the real login form (all at once, as at a shift change), warms the server up (--warmup
seconds at the largest level, reported apart: each pooled connection's first runs of a statement
are planned afresh), then for each level C drives them through the htmx submit with the fields and
headers the page sends, no think time.

Per level it prints judgments/s, p50/p95/p99 per request type, errors, the CPU the server
processes and the PostgreSQL backends spent per judgment (steadier than wall time on a shared
machine), and SQL statements per judgment (counted in the server by bench/statement_counter).
At the end it checks the database: every acknowledged judgment stored once, no rater twice on a
comparison, no comparison over its overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "bench-password-long-enough"
T = TypeVar("T")
TEXTS = 200  # distinct response texts, reused round-robin (rendering cost is per text anyway)
VOCAB = ["patient", "reports", "chest", "pain", "exertion", "dyspnoea", "history", "hypertension", "diabetes", "aspirin", "troponin", "ECG", "refer", "urgently", "consider", "statin", "dose", "monitor", "renal", "function", "potassium", "follow", "up", "weeks", "symptoms", "worsen", "emergency", "department", "advise", "lifestyle", "smoking", "cessation", "weight", "blood", "pressure", "target", "guideline", "recommends", "evidence", "risk", "benefit", "discuss", "shared", "decision"]


def _markdown(rng: random.Random) -> str:
    """A 150-300-word markdown answer: paragraphs, a list, some emphasis."""
    words = [rng.choice(VOCAB) for _ in range(rng.randint(150, 300))]
    parts, i = [], 0
    while i < len(words):
        chunk = words[i : i + rng.randint(25, 60)]
        i += len(chunk)
        if rng.random() < 0.3:
            parts.append("\n".join(f"- {' '.join(chunk[j:j + 6])}" for j in range(0, len(chunk), 6)))
        else:
            chunk[0] = f"**{chunk[0].capitalize()}**"
            parts.append(" ".join(chunk) + ".")
    return "\n\n".join(parts)


# ---------------------------------------------------------------- database setup


def _columns(cur: psycopg.Cursor, table: str) -> set[str]:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
    )
    return {row[0] for row in cur.fetchall()}


def build_database(url: str, *, comparisons: int, raters: int, overlap: int, seed: int) -> None:
    """Migrate, then bulk-load one active campaign of `comparisons` 2-way comparisons."""
    from app.migrate import upgrade
    from app.security import hash_password

    upgrade(url)
    rng = random.Random(seed)
    texts = [_markdown(rng) for _ in range(TEXTS)]
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE bench_texts (i int PRIMARY KEY, t text, html text)")
        rendered = _rendered_if_stored(cur, texts)
        with cur.copy("COPY bench_texts (i, t, html) FROM STDIN") as copy:
            for i, t in enumerate(texts):
                copy.write_row((i, t, rendered[i] if rendered else None))
        guidelines = "\n\n".join(_markdown(rng) for _ in range(2))
        cur.execute(
            "INSERT INTO campaigns (name, guidelines_md, overlap, gold_rate, priority, status,"
            " flags, rubric, created_at) VALUES ('bench', %s, %s, 0, 0, 'active',"
            " '[\"unsafe\", \"factually_wrong\"]', '[]', now()) RETURNING id",
            (guidelines, overlap),
        )
        campaign_id = cur.fetchone()[0]  # type: ignore[index]
        cur.execute(
            "INSERT INTO users (email, display_name, role, password_hash, pseudonym, active,"
            " session_version, created_at) SELECT 'rater' || g || '@bench.example', 'Rater ' || g,"
            " 'rater', %s, 'bench-' || g, true, 0, now() FROM generate_series(1, %s) g",
            (hash_password(PASSWORD), raters),
        )
        cur.execute(
            "INSERT INTO prompts (campaign_id, external_id, text, context, created_at)"
            " SELECT %s, 'p' || g, 'A 58-year-old asks: **chest pain** on exertion, case ' || g"
            " || '. What next?', '{\"setting\": \"primary care\"}', now()"
            " FROM generate_series(1, %s) g",
            (campaign_id, comparisons),
        )
        html = ", html" if "html" in _columns(cur, "responses") else ""
        if html:  # as an import stores it (the case number is plain text: escaping is a no-op)
            cur.execute(
                "UPDATE prompts SET html = '<p>A 58-year-old asks: <strong>chest pain</strong>"
                " on exertion, case ' || substr(external_id, 2) || '. What next?</p>' || chr(10)"
                " WHERE campaign_id = %s",
                (campaign_id,),
            )
        cur.execute(
            f"INSERT INTO responses (prompt_id, text, model_label, created_at{html})"
            f" SELECT p.id, t.t, 'm' || k, now(){', t.html' if html else ''}"
            " FROM prompts p CROSS JOIN generate_series(0, 1) k"
            " JOIN bench_texts t ON t.i = (p.id * 2 + k) %% %s"
            " WHERE p.campaign_id = %s ORDER BY p.id, k",
            (TEXTS, campaign_id),
        )
        cur.execute(
            "INSERT INTO comparisons (campaign_id, prompt_id, is_gold, priority, created_at)"
            " SELECT %s, id, false, 0, now() FROM prompts WHERE campaign_id = %s ORDER BY id",
            (campaign_id, campaign_id),
        )
        cur.execute(
            "INSERT INTO comparison_items (comparison_id, position, response_id)"
            " SELECT c.id, (row_number() OVER (PARTITION BY c.id ORDER BY r.id)) - 1, r.id"
            " FROM comparisons c JOIN responses r ON r.prompt_id = c.prompt_id"
            " WHERE c.campaign_id = %s",
            (campaign_id,),
        )
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


def _rendered_if_stored(cur: psycopg.Cursor, texts: list[str]) -> list[str] | None:
    # Where the schema keeps rendered markdown, fill it the way an import does (once per text).
    if "html" not in _columns(cur, "responses"):
        return None
    from app.rendering import render_markdown

    return [str(render_markdown(t)) for t in texts]


# ---------------------------------------------------------------- a small HTTP/1.1 client


class Http:
    """One keep-alive connection and a cookie jar: a rater's browser, as cheap as it gets.

    httpx would cost more CPU per request than the server's own work at these rates, and the
    client shares the machine's two cores with the server.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(
        self, method: str, path: str, *, form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        reused = self.writer is not None
        try:
            return await self._once(method, path, form, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                raise
        # The server closed an idle keep-alive connection: a browser reconnects and resends.
        return await self._once(method, path, form, headers)

    async def _once(
        self, method: str, path: str, form: dict[str, str] | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, dict[str, str], str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None and self.writer is not None
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 "Accept: text/html", "User-Agent: prefloop-bench"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded",
                      f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        found: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie, _, _ = value.partition(";")
                key, _, val = cookie.partition("=")
                self.cookies[key] = val
            found[name] = value
        if found.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            data = await self.reader.readexactly(int(found.get("content-length", "0")))
        if found.get("connection") == "close":
            await self.close()
        return status, found, data.decode("utf-8", "replace")


# ---------------------------------------------------------------- raters

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FIELD = re.compile(r'name="(assignment_id|idempotency_key)" value="([^"]+)"')


@dataclass
class Stats:
    """Latencies (ms) per request type, status counts, acknowledged judgments."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    acked: list[tuple[int, str]] = field(default_factory=list)  # (rater number, idempotency key)
    judged_in_window: int = 0
    logins_running: bool = False  # a shift change is logging raters in (see shift_change)

    def record(self, kind: str, started: float, status: int) -> None:
        self.latency.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        counts = self.statuses.setdefault(kind, {})
        counts[status] = counts.get(status, 0) + 1


@dataclass
class Rater:
    """A logged-in rater: its connection, CSRF token and the form it is looking at."""

    number: int
    http: Http
    csrf: str = ""
    form: dict[str, str] = field(default_factory=dict)
    done: bool = False

    def read_workspace(self, html: str) -> None:
        self.form = dict(_FIELD.findall(html))
        self.done = "Nothing left to rate" in html or "assignment_id" not in self.form


async def log_in(number: int, port: int, stats: Stats) -> Rater | None:
    """GET /login, POST the form, GET /rate: what a physician's browser does."""
    rater = Rater(number, Http(port))
    try:
        started = time.perf_counter()
        status, _, html = await rater.http.request("GET", "/login")
        stats.record("login_form", started, status)
        csrf = _CSRF.search(html)
        if status != 200 or csrf is None:
            stats.errors.append(f"login form: {status}")
            return None
        started = time.perf_counter()
        status, _, _ = await rater.http.request("POST", "/login", form={
            "csrf_token": csrf.group(1), "email": f"rater{number}@bench.example",
            "password": PASSWORD, "next": "/rate"})
        stats.record("login", started, status)
        if status != 303:
            stats.errors.append(f"login: {status}")
            return None
        started = time.perf_counter()
        status, _, html = await rater.http.request("GET", "/rate")
        stats.record("rate_page", started, status)
        csrf = _CSRF.search(html)
        if status != 200 or csrf is None:
            stats.errors.append(f"rate page: {status}")
            return None
        rater.csrf = csrf.group(1)
        rater.read_workspace(html)
        return rater
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stats.errors.append(f"login: {type(exc).__name__}: {exc}")
        return None


async def rate_until(rater: Rater, port: int, deadline: float, stats: Stats,
                     rng: random.Random) -> None:
    """Submit judgments back to back (the htmx POST the page makes) until the deadline."""
    while not rater.done and time.perf_counter() < deadline:
        form = {
            "csrf_token": rater.csrf,
            "idempotency_key": rater.form["idempotency_key"],
            "assignment_id": rater.form["assignment_id"],
            "time_spent_ms": str(rng.randint(5000, 60000)),
            "scale": str(rng.randint(-3, 3)),
            "not_rankable_reason": "",
            "rationale": "",
        }
        headers = {"HX-Request": "true", "HX-Current-URL": f"http://127.0.0.1:{port}/rate",
                   "HX-Target": "workspace", "HX-Trigger": "judge", "X-CSRF-Token": rater.csrf}
        started = time.perf_counter()
        kind = "submit+login" if stats.logins_running else "submit"
        try:
            status, _, html = await rater.http.request("POST", "/rate/submit", form=form,
                                                       headers=headers)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.record(kind, started, 0)
            stats.errors.append(f"submit: {type(exc).__name__}")
            await asyncio.sleep(0.05)
            continue
        stats.record(kind, started, status)
        if status == 200:
            stats.acked.append((rater.number, form["idempotency_key"]))
            if time.perf_counter() <= deadline:
                stats.judged_in_window += 1
            rater.read_workspace(html)
        elif status >= 500:
            await asyncio.sleep(0.05)  # the same form again, as a physician would press again
        else:
            # 4xx: start again from the page (the form is stale).
            started = time.perf_counter()
            status, _, html = await rater.http.request("GET", "/rate")
            stats.record("rate_page", started, status)
            if status == 200:
                rater.read_workspace(html)


# ---------------------------------------------------------------- measuring


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def server_cpu(pid: int) -> float:
    """CPU seconds of the server and its worker processes."""
    return _proc_cpu(pid) + sum(_proc_cpu(child) for child in _children(pid))


def start_profilers(folder: Path | None, server_pid: int, level: int,
                    duration: float) -> list[subprocess.Popen[bytes]]:
    """py-spy (a dev dependency) sampling each server worker for the level, as collapsed stacks."""
    if folder is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(duration)),
                          "--rate", "200", "--format", "raw", "--nonblocking", "--gil",
                          "--output", str(folder / f"C{level}-{pid}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pid in _children(server_pid) or [server_pid]
    ]


def backend_cpu(conn: psycopg.Connection, database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` (this monitor excluded)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall()
    return {pid: _proc_cpu(pid) for (pid,) in rows}


def statement_counts(folder: Path) -> dict[str, tuple[int, int]]:
    """(statements, commits) sent so far by each server process, by its pid."""
    counts = {}
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        counts[path.stem] = (data["statements"], data["commits"])
    return counts


def totals(counts: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(statements, commits) of all the server's processes together."""
    return sum(s for s, _ in counts.values()), sum(c for _, c in counts.values())


def worker_shares(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    """Each worker's share of the level's commits (keep-alive connections stay with the worker
    that accepted them, so the raters of a level may sit unevenly on the workers)."""
    done = [after[pid][1] - before.get(pid, (0, 0))[1] for pid in sorted(after)]
    total = sum(done)
    return " / ".join(f"{100 * n / total:.0f}%" for n in done if n) if total else "-"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summarise(kind_latencies: dict[str, list[float]], statuses: dict[str, dict[int, int]]) -> str:
    lines = []
    for kind, values in sorted(kind_latencies.items()):
        codes = ", ".join(f"{code or 'conn-error'} x{n}" for code, n in sorted(statuses[kind].items()))
        lines.append(
            f"    {kind:<10} n={len(values):<6} p50 {_pct(values, .5):8.1f} ms  p95 "
            f"{_pct(values, .95):8.1f} ms  p99 {_pct(values, .99):8.1f} ms   [{codes}]"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- the run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, workers: int, port: int, stats_dir: Path, log: Path,
                 server_path: str) -> subprocess.Popen[bytes]:
    """`prefloop serve --workers W` on a loopback port, counting its statements.

    `server_path`: more PYTHONPATH entries for the server (by default the client's own).
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "bench" / "statement_counter"),
             *filter(None, server_path.split(os.pathsep))]
        ),
        "PREFLOOP_DATABASE_URL": url,
        "PREFLOOP_ENV": "development",
        "PREFLOOP_SECRET_KEY": uuid.uuid4().hex * 2,
        "PREFLOOP_BENCH_STATS": str(stats_dir),
    }
    prefloop = Path(sys.executable).parent / "prefloop"
    command = [str(prefloop), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=ROOT, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        # Every worker up: one that started late would miss the logins' connections.
        if log.read_text().count("Application startup complete.") >= workers:
            return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start in 240 s")


async def shift_change(numbers: range, port: int, stats: Stats, login_stats: Stats,
                       delay: float) -> float:
    """After `delay` s, log `numbers` in at once while the level's raters keep submitting (their
    submits meanwhile are recorded as "submit+login"); the seconds the logins took."""
    await asyncio.sleep(delay)
    stats.logins_running = True
    started = time.perf_counter()
    try:
        arrived = await asyncio.gather(*(log_in(n, port, login_stats) for n in numbers))
    finally:
        stats.logins_running = False
    seconds = time.perf_counter() - started
    for rater in arrived:
        if rater is not None:
            await rater.http.close()
    return seconds


async def run_levels(args: argparse.Namespace, port: int, server_pid: int, url: str,
                     stats_dir: Path) -> tuple[list[dict[str, object]], Stats]:
    """Log the raters in, then drive each concurrency level for `duration` seconds."""
    database = make_url(url).database
    monitor = psycopg.connect(make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(
        hide_password=False), autocommit=True)
    everything = Stats()
    login_stats = Stats()
    started = time.perf_counter()
    raters = await asyncio.gather(*(log_in(n, port, login_stats)
                                    for n in range(1, max(args.concurrency) + 1)))
    login_wall = time.perf_counter() - started
    print(f"logins: {max(args.concurrency)} raters at once in {login_wall:.1f} s; "
          f"errors {len(login_stats.errors)}")
    print(summarise(login_stats.latency, login_stats.statuses))
    everything.acked.extend(login_stats.acked)
    ready = [r for r in raters if r is not None]
    rng = random.Random(args.seed)
    results = []
    # The warm-up: every connection of the server's pools prepares and plans the statements it
    # will run (PostgreSQL plans a prepared statement afresh its first few runs), as on a server
    # that has been up a while. Reported, not counted in the levels.
    levels = [(c, args.duration, f"C={c:<4}") for c in args.concurrency]
    if args.warmup > 0:
        levels.insert(0, (max(args.concurrency), args.warmup, "warm-up"))
    for c, duration, label in levels:
        warming = label == "warm-up"
        group = [r for r in ready if not r.done][:c]
        stats = Stats()
        cpu0, pg0, counts0 = server_cpu(server_pid), backend_cpu(monitor, database), \
            statement_counts(stats_dir)
        client0 = time.process_time()
        t0 = time.perf_counter()
        deadline = t0 + duration
        profilers = start_profilers(None if warming else args.profile, server_pid, c,
                                     duration)
        tasks = [asyncio.create_task(rate_until(r, port, deadline, stats, rng)) for r in group]
        storm_stats, storm = Stats(), None
        if args.shift_change and not warming:
            first = max(args.concurrency) + 1 + len(results) * args.shift_change
            storm = asyncio.create_task(shift_change(
                range(first, first + args.shift_change), port, stats, storm_stats,
                delay=duration / 3))
        done, pending = await asyncio.wait(tasks, timeout=duration + 90)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - t0
        client_cpu = time.process_time() - client0
        for profiler in profilers:
            profiler.wait()
        time.sleep(0.6)  # the statement counters are written every 0.25 s
        cpu1, pg1, counts1 = server_cpu(server_pid), backend_cpu(monitor, database), \
            statement_counts(stats_dir)
        (st0, cm0), (st1, cm1) = totals(counts0), totals(counts1)
        pg_cpu = sum(pg1[p] - pg0.get(p, 0.0) for p in pg1)
        judged = len(stats.acked)
        failures = sum(n for kind in stats.statuses.values() for code, n in kind.items()
                       if code >= 500 or code == 0)
        row = {
            "concurrency": c, "raters": len(group), "judgments": judged,
            "judgments_per_s": stats.judged_in_window / duration,
            "wall_s": wall, "errors_5xx": failures,
            "server_cpu_ms_per_judgment": 1000 * (cpu1 - cpu0) / max(judged, 1),
            "pg_cpu_ms_per_judgment": 1000 * pg_cpu / max(judged, 1),
            "client_cpu_ms_per_judgment": 1000 * client_cpu / max(judged, 1),
            "statements_per_judgment": (st1 - st0) / max(judged, 1),
            "commits_per_judgment": (cm1 - cm0) / max(judged, 1),
            "submit_p50_ms": _pct(stats.latency.get("submit", []), .5),
            "submit_p95_ms": _pct(stats.latency.get("submit", []), .95),
            "submit_p99_ms": _pct(stats.latency.get("submit", []), .99),
            "worker_shares": worker_shares(counts0, counts1),
        }
        if not warming:
            results.append(row)
        print(f"{label} ({len(group)} raters) {row['judgments_per_s']:7.1f} judgments/s  5xx/conn errors {failures}  "
              f"server CPU {row['server_cpu_ms_per_judgment']:.1f} ms/j  PostgreSQL CPU "
              f"{row['pg_cpu_ms_per_judgment']:.1f} ms/j  client CPU "
              f"{row['client_cpu_ms_per_judgment']:.1f} ms/j  statements "
              f"{row['statements_per_judgment']:.1f}/j (+{row['commits_per_judgment']:.1f} commits)"
              f"  ({judged} judgments, {wall:.1f} s; workers' shares {row['worker_shares']})")
        print(summarise(stats.latency, stats.statuses))
        if storm is not None:
            seconds = await storm
            during = stats.latency.get("submit+login", [])
            print(f"    shift change: {args.shift_change} more raters logged in meanwhile in "
                  f"{seconds:.1f} s, errors {len(storm_stats.errors)}; the raters at work "
                  f"submitted {len(during) / seconds:.1f}/s during the logins")
            print(summarise(storm_stats.latency, storm_stats.statuses))
            everything.errors.extend(storm_stats.errors)
        everything.acked.extend(stats.acked)
        everything.errors.extend(stats.errors)
    monitor.close()
    for rater in ready:
        await rater.http.close()
    return results, everything


def check_integrity(url: str, acked: list[tuple[int, str]], overlap: int) -> dict[str, int]:
    """The database after the run: what raters saw accepted is stored once; no overlap exceeded."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        stored = dict(conn.execute(
            "SELECT u.email || ' ' || j.idempotency_key, count(*) FROM judgments j"
            " JOIN users u ON u.id = j.rater_id GROUP BY 1").fetchall())
        wanted = [f"rater{n}@bench.example {key}" for n, key in acked]
        missing = sum(1 for key in wanted if stored.get(key, 0) == 0)
        duplicated = sum(1 for key in wanted if stored.get(key, 0) > 1)
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM judgments WHERE revision = 0"
            " GROUP BY comparison_id, rater_id HAVING count(*) > 1) t").fetchone()[0]  # type: ignore[index]
        over = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM judgments WHERE revision = 0"
            " GROUP BY comparison_id HAVING count(*) > %s) t", (overlap,)).fetchone()[0]  # type: ignore[index]
        held_over = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM assignments WHERE state = 'submitted'"
            " OR (state = 'leased' AND lease_expires_at > now())"
            " GROUP BY comparison_id HAVING count(*) > %s) t", (overlap,)).fetchone()[0]  # type: ignore[index]
        total = conn.execute("SELECT count(*) FROM judgments").fetchone()[0]  # type: ignore[index]
    return {"acknowledged": len(acked), "acknowledged_missing": missing,
            "acknowledged_stored_twice": duplicated, "rater_twice_on_a_comparison": twice,
            "comparisons_over_overlap": over, "comparisons_over_overlap_places": held_over,
            "judgments_in_database": total}


def run(main: Coroutine[Any, Any, T]) -> T:
    """The client's event loop: uvloop where installed (the client's CPU is the server's loss)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    print("client on uvloop")
    return uvloop.run(main)


def main() -> None:
    """Parse the arguments, build the database, serve, drive, check, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comparisons", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 10, 100])
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per level.")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="Seconds of rating at the largest level before the levels (0: none).")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--shift-change", type=int, default=0, metavar="N",
                        help="A third of the way into each level, N more raters log in at once"
                        " while the others keep rating: submits during the logins are reported"
                        " apart (\"submit+login\").")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--server-path", help="PYTHONPATH entries for the server only (default:"
                        " the client's); '' runs the server without the client's extra packages.")
    parser.add_argument("--profile", type=Path,
                        help="Sample the server workers with py-spy into this folder, per level.")
    args = parser.parse_args()

    with scratch_database("prefloop_bench_i13", keep=args.keep) as (name, _admin, url):
        serve_and_drive(args, name, url)


@contextmanager
def scratch_database(prefix: str, *, keep: bool = False) -> Iterator[tuple[str, str, str]]:
    """A new PostgreSQL database: (its name, the admin DSN, its SQLAlchemy URL); dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, admin, make_url(ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve_and_drive(args: argparse.Namespace, name: str, url: str) -> None:
    """Build the campaign, start the server, drive every level, check the database."""
    stats_dir = Path(tempfile.mkdtemp(prefix="prefloop-bench-"))
    process = None
    try:
        t0 = time.perf_counter()
        raters = max(args.concurrency) + args.shift_change * len(args.concurrency)
        build_database(url, comparisons=args.comparisons, raters=raters,
                       overlap=args.overlap, seed=args.seed)
        print(f"database {name}: {args.comparisons} comparisons, overlap {args.overlap}, "
              f"built in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        server_path = os.environ.get("PYTHONPATH", "") if args.server_path is None \
            else args.server_path
        process = start_server(url, args.workers, port, stats_dir, stats_dir / "server.log",
                               server_path)
        print(f"prefloop serve --workers {args.workers} on 127.0.0.1:{port}")
        results, everything = run(run_levels(args, port, process.pid, url, stats_dir))
        integrity = check_integrity(url, everything.acked, args.overlap)
        print("integrity:", json.dumps(integrity))
        if everything.errors:
            print("client errors (first 5):", everything.errors[:5])
        log = (stats_dir / "server.log").read_text(errors="replace")
        tracebacks = log.count("Traceback")
        print(f"server log: {tracebacks} tracebacks"
              + (f"; last: {log[log.rfind('Traceback'):][:600]}" if tracebacks else ""))
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "levels": results, "integrity": integrity}, indent=1))
    finally:
        if process is not None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        shutil.rmtree(stats_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""CPU per judgment inside the server, measured in-process: steady on a busy machine.

    PYTHONPATH=$PWD .venv/bin/python bench/rater_cpu.py --submits 2000
    py-spy record --format raw -o stacks.txt -- .venv/bin/python bench/rater_cpu.py  # where

Builds a scratch database like bench/rater_load.py (3,000 comparisons), creates the app, logs a
few raters in, then sends the htmx submit straight into the ASGI app, one request at a time, on
one event loop: no sockets, no client. It prints the process CPU (server code and its thread
hops, without HTTP parsing) per submit, and the database backends' CPU per submit. Under py-spy
(a dev dependency) it shows where that CPU goes, threads included. One core for a few seconds:
no bench lock needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rater_load import PASSWORD, backend_cpu, build_database, scratch_database  # noqa: E402

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FIELD = re.compile(r'name="(assignment_id|idempotency_key)" value="([^"]+)"')


async def call(app: Any, method: str, path: str, cookies: dict[str, str], body: bytes = b"",
               headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One request through the ASGI app; cookies from the response go into `cookies`."""
    raw = [(b"host", b"bench"), (b"accept", b"text/html")]
    if cookies:
        raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    if body:
        raw += [(b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": raw, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message["headers"]:
                if name == b"set-cookie":
                    key, _, rest = value.decode().partition("=")
                    cookies[key] = rest.partition(";")[0]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks).decode()


async def log_in(app: Any, number: int) -> tuple[dict[str, str], str, dict[str, str]]:
    """A rater's cookies, CSRF token and the form of their first comparison."""
    cookies: dict[str, str] = {}
    _, html = await call(app, "GET", "/login", cookies)
    csrf = _CSRF.search(html).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": csrf, "email": f"rater{number}@bench.example", "password": PASSWORD,
            "next": "/rate"}
    status, _ = await call(app, "POST", "/login", cookies, urlencode(form).encode())
    assert status == 303, status
    _, html = await call(app, "GET", "/rate", cookies)
    return cookies, _CSRF.search(html).group(1), dict(_FIELD.findall(html))  # type: ignore[union-attr]


async def drive(app: Any, raters: int, submits: int, blocks: int,
                monitor: psycopg.Connection, database: str) -> None:
    """Log in, warm up, then time `submits` htmx submits round-robin over the raters."""
    people = [await log_in(app, n) for n in range(1, raters + 1)]
    rng = random.Random(13)

    async def one(i: int) -> None:
        cookies, csrf, form = people[i % raters]
        body = urlencode({"csrf_token": csrf, "idempotency_key": form["idempotency_key"],
                          "assignment_id": form["assignment_id"],
                          "time_spent_ms": str(rng.randint(5000, 60000)),
                          "scale": str(rng.randint(-3, 3)), "not_rankable_reason": "",
                          "rationale": ""}).encode()
        status, html = await call(app, "POST", "/rate/submit", cookies, body, {
            "HX-Request": "true", "HX-Target": "workspace", "X-CSRF-Token": csrf})
        assert status == 200, (status, html[:300])
        form.clear()
        form.update(_FIELD.findall(html))

    for i in range(50):
        await one(i)
    sent = [0]
    event.listen(Engine, "before_cursor_execute", lambda *_: sent.__setitem__(0, sent[0] + 1))
    block = submits // blocks
    figures = []
    for b in range(blocks):  # the least disturbed block is the steadiest figure on a busy machine
        pg0 = backend_cpu(monitor, database)
        cpu0, t0, sent0 = time.process_time(), time.perf_counter(), sent[0]
        for i in range(block):
            await one(b * block + i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        pg = sum(v - pg0.get(p, 0.0) for p, v in backend_cpu(monitor, database).items())
        figures.append((1000 * cpu / block, 1000 * pg / block, 1000 * wall / block,
                        (sent[0] - sent0) / block))
    # Block by block too: a cost that grows with the raters' history shows as a rising column.
    for b, (cpu, pg, wall, _) in enumerate(figures, 1):
        print(f"block {b}: server {cpu:6.2f}  PostgreSQL {pg:6.2f}  wall {wall:6.2f} ms/submit")
    for name, column in (("server CPU", 0), ("PostgreSQL CPU", 1), ("wall", 2)):
        values = sorted(f[column] for f in figures)
        print(f"{name:>15}: min {values[0]:6.2f}  median {values[len(values) // 2]:6.2f} ms/submit")
    print(f"{'statements':>15}: {figures[-1][3]:.1f} per submit (pings and commits excluded)")


def main() -> None:
    """Build, serve in-process, drive, report, drop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=5, help="Timed blocks (each, min, median).")
    parser.add_argument("--comparisons", type=int, default=3000)
    args = parser.parse_args()
    with scratch_database("prefloop_cpu") as (name, admin, url):
        serve_in_process(args, name, admin, url)


def serve_in_process(args: argparse.Namespace, name: str, admin: str, url: str) -> None:
    """Build the campaign, create the app, drive the submits, report."""
    try:
        build_database(url, comparisons=args.comparisons, raters=args.raters, overlap=3, seed=13)
        os.environ.update(PREFLOOP_DATABASE_URL=url, PREFLOOP_ENV="development",
                          PREFLOOP_SECRET_KEY=uuid.uuid4().hex * 2)
        from app.main import create_app

        app = create_app()
        monitor = psycopg.connect(admin, autocommit=True)

        async def run() -> None:
            async with app.router.lifespan_context(app):
                await drive(app, args.raters, args.submits, args.blocks, monitor, name)

        asyncio.run(run())
        monitor.close()
    finally:
        from app.db import get_engine

        get_engine().dispose()


if __name__ == "__main__":
    main()

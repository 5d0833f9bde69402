"""Faults under load, each bounded in time: PostgreSQL restarted, the server SIGKILLed.

Raters (threads, each its own HTTP client and login) rate as fast as they can; a judgment counts
as acknowledged when the submit answered 303. After the fault, every acknowledged judgment must
be in the database, and the raters must finish the campaign without a restart of the server.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.models import Comparison, Judgment
from tests.factories import PASSWORD, make_campaign, make_comparisons, make_raters
from tests.faults.cluster import Cluster, Server

pytestmark = pytest.mark.fault
RATERS = 6
COMPARISONS = 40
OVERLAP = 2
_FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Load:
    """What the raters saw: acknowledged idempotency keys, status counts, and when."""

    acked: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    finished: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked_enough: threading.Event = field(default_factory=threading.Event)

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1


def _seed(url: str) -> list[str]:
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        campaign = make_campaign(s, overlap=OVERLAP)
        make_comparisons(s, campaign, count=COMPARISONS)
        emails = [r.email for r in make_raters(s, RATERS)]
    engine.dispose()
    return emails


def _retrying(load: Load, deadline: float, send):  # noqa: ANN001, ANN202
    """Send until the server answers something other than 503 or a dropped connection."""
    while time.monotonic() < deadline:
        try:
            response = send()
        except httpx.TransportError:  # the server is down or restarting
            with load.lock:
                load.connection_errors += 1
            time.sleep(0.1)
            continue
        load.saw(response.status_code)
        if response.status_code != 503:
            return response
        assert response.headers.get("Retry-After"), "a 503 says when to retry"
        time.sleep(0.1)
    raise TimeoutError("the server did not recover in time")


def _rater(server: Server, email: str, load: Load, deadline: float) -> None:
    with httpx.Client(base_url=server.base, timeout=5, headers={"Accept": "text/html"}) as http:
        page = _retrying(load, deadline, lambda: http.get("/login"))
        csrf = _CSRF.search(page.text).group(1)
        logged = _retrying(load, deadline, lambda: http.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf}))
        assert logged.status_code == 303, logged.status_code
        while time.monotonic() < deadline:
            page = _retrying(load, deadline, lambda: http.get("/rate"))
            assert page.status_code == 200, page.status_code
            if "Nothing left to rate" in page.text:
                with load.lock:
                    load.finished += 1
                return
            form = dict(_FIELD.findall(page.text))
            form["scale"] = "-2"
            done = _retrying(load, deadline, lambda form=form: http.post("/rate/submit", data=form))
            assert done.status_code == 303, (done.status_code, done.text[:300])
            with load.lock:
                load.acked.add(form["idempotency_key"])
                if len(load.acked) >= 15:
                    load.acked_enough.set()


def _run(server: Server, emails: list[str], fault, seconds: float = 150) -> Load:  # noqa: ANN001
    load = Load()
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def guarded(email: str) -> None:
        try:
            _rater(server, email, load, deadline)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(e,)) for e in emails]
    for t in threads:
        t.start()
    assert load.acked_enough.wait(60), "the load never got going"
    fault()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "raters still running at the deadline"
    return load


def _stored(url: str) -> tuple[set[str], dict[int, int]]:
    engine = create_engine(url)
    with Session(engine) as s:
        keys = set(s.scalars(select(Judgment.idempotency_key)))
        per = dict(s.execute(select(Comparison.id, func.count(Judgment.id))
                             .join(Judgment, Judgment.comparison_id == Comparison.id)
                             .group_by(Comparison.id)).all())
    engine.dispose()
    return keys, per


def _everything_kept(load: Load, url: str) -> None:
    keys, per = _stored(url)
    print(f"acknowledged {len(load.acked)}, stored {len(keys)}, statuses {dict(load.statuses)}, "
          f"dropped connections {load.connection_errors}")
    assert load.acked <= keys, f"{len(load.acked - keys)} acknowledged judgments were lost"
    assert load.finished == RATERS  # every rater reached the end: no lease left stuck
    assert len(per) == COMPARISONS and set(per.values()) == {OVERLAP}
    assert not [s for s in load.statuses if s >= 500 and s != 503], load.statuses


def test_postgres_restart_mid_load_gives_503_then_recovers_losing_nothing(
    cluster: Cluster, server: Server
) -> None:
    emails = _seed(server.url)
    pid = server.proc.pid

    def restart_postgres() -> None:
        cluster.pg_ctl("stop", "-m", "fast")
        time.sleep(2)  # an outage long enough for every rater to hit it
        cluster.pg_ctl("start")

    load = _run(server, emails, restart_postgres)
    assert load.statuses[503] > 0, f"no clear 503 during the outage: {load.statuses}"
    assert server.proc.poll() is None and server.proc.pid == pid  # recovered without a restart
    _everything_kept(load, server.url)


def test_server_sigkilled_mid_load_loses_no_acknowledged_judgment(
    cluster: Cluster, server: Server
) -> None:
    emails = _seed(server.url)

    def kill_and_restart() -> None:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        time.sleep(0.5)
        server.start()

    load = _run(server, emails, kill_and_restart)
    assert load.connection_errors > 0, "the kill did not interrupt the raters"
    _everything_kept(load, server.url)

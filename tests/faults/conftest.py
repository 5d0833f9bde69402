"""A throwaway PostgreSQL cluster and a real server process, for tests that break them on purpose.

The shared cluster on 127.0.0.1:5432 is never touched: these tests initdb their own in a
temporary directory, on a free port, and stop and delete it afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A private PostgreSQL cluster: its data directory, port, and a way to stop and start it."""

    bindir: str
    root: Path
    port: int
    as_postgres: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster (as the postgres OS user when we are root)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*self.as_postgres, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l",
             str(self.root / "log"), "-o", options, "-w", "-t", "60", *args],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` in this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A fresh cluster (initdb), started; stopped and deleted after the module."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    bindir = os.path.dirname(found[-1])
    root = Path(tempfile.mkdtemp(prefix="prefloop-fault-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    subprocess.run([*as_postgres, f"{bindir}/initdb", "-D", str(root / "data"), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True, timeout=120)
    made = Cluster(bindir, root, free_port(), as_postgres)
    made.pg_ctl("start")
    try:
        yield made
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # a test stopped it half-way
            made.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fault_db(cluster: Cluster) -> Iterator[str]:
    """A new, migrated database in the private cluster."""
    from app.migrate import upgrade

    name = f"prefloop_fault_{os.urandom(4).hex()}"
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = cluster.url(name)
    upgrade(url)
    yield url


class Server:
    """`uvicorn app.main:create_app` on a port, as a child process that tests may kill."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until /healthz answers."""
        env = {**os.environ, "PREFLOOP_DATABASE_URL": self.url, "PREFLOOP_ENV": "test"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "critical"],
            cwd=REPO, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Terminate it (if it still runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def server(fault_db: str) -> Iterator[Server]:
    """A running server on the private cluster's database."""
    running = Server(fault_db)
    running.start()
    yield running
    running.stop()

"""A throwaway PostgreSQL cluster and a real server process, for tests that break them on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port


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


REPO = Path(__file__).resolve().parents[2]


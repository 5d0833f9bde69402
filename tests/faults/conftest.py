"""A throwaway PostgreSQL cluster and a real server process, for tests that break them on purpose.

The shared cluster on 127.0.0.1:5432 is never touched: these tests initdb their own in a
temporary directory, on a free port, and stop and delete it afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.faults.cluster import Cluster, Server
from tests.support import free_port


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


@pytest.fixture
def server(fault_db: str) -> Iterator[Server]:
    """A running server on the private cluster's database."""
    running = Server(fault_db)
    running.start()
    yield running
    running.stop()

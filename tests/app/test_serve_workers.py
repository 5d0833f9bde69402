"""`prefloop serve --workers 2` as an operator runs it: connections made together (raters arriving
at a shift change, or browsers reconnecting after an idle spell) spread over the workers; a worker
that dies is replaced; SIGTERM stops them all.

Which worker holds a connection is read from /proc: the server's end of each of our connections
is a socket one worker process has open."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PREFLOOP, REPO, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; balances on Linux")

LISTEN, ESTABLISHED = "0A", "01"


def tcp_sockets(port: int, state: str) -> dict[int, int]:
    """{inode: remote port} of the IPv4 TCP sockets on local `port` in `state`."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == port and fields[3] == state:
            found[int(fields[9])] = int(remote.split(":")[1], 16)
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(int(link[len("socket:["):-1]))
    return inodes


def children(pid: int) -> list[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in listed]


def listening_workers(parent: int, port: int) -> list[int]:
    """The parent's child processes that listen on `port`."""
    listening = set(tcp_sockets(port, LISTEN))
    return [pid for pid in children(parent) if socket_inodes(pid) & listening]


def wait_for_workers(parent: subprocess.Popen[bytes], port: int, count: int,
                     log: Path) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert parent.poll() is None, log.read_text()
        workers = listening_workers(parent.pid, port)
        if len(workers) == count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers never listened: {log.read_text()}")


@contextlib.contextmanager
def connected_together(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` keep-alive connections opened at once, each having had one answer; closed after."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(conn) for conn in _connect_together(port, count)]


def _connect_together(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        conn = socket.socket()
        conn.setblocking(False)
        conn.connect_ex(("127.0.0.1", port))  # in progress: all of them before any is accepted
        connections.append(conn)
    for conn in connections:
        conn.setblocking(True)
        conn.settimeout(30)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for conn in connections:
        answer = b""
        while b'"ok"' not in answer:
            chunk = conn.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
    return connections


def holders(connections: list[socket.socket], port: int, workers: list[int]) -> Counter[int]:
    """How many of `connections` each worker holds."""
    owner = {inode: pid for pid in workers for inode in socket_inodes(pid)}
    by_client_port = {remote: owner.get(inode)
                      for inode, remote in tcp_sockets(port, ESTABLISHED).items()}
    return Counter(by_client_port.get(conn.getsockname()[1]) for conn in connections)


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`prefloop serve --workers 2` on the test database: (the process, its port, its log)."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "PREFLOOP_DATABASE_URL": pg_url, "PREFLOOP_ENV": "development"}
    with log.open("wb") as out:
        parent = subprocess.Popen([*PREFLOOP, "serve", "--port", str(port), "--workers", "2"],
                                  env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield parent, port, log
    finally:
        if parent.poll() is None:
            left = children(parent.pid)
            parent.kill()
            parent.wait()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def assert_spread(connections: list[socket.socket], port: int, workers: list[int]) -> None:
    held = holders(connections, port, workers)
    assert sum(held[pid] for pid in workers) == len(connections), held
    # Shared by a fair coin per connection, each worker's share of 100 lies within 25..75 but
    # for one run in millions; one shared listening socket gave 98 to 100 of them to one worker.
    for pid in workers:
        assert held[pid] >= len(connections) // 4, held


def test_connections_made_together_spread_over_the_workers(served) -> None:
    parent, port, log = served
    workers = wait_for_workers(parent, port, 2, log)
    with connected_together(port, 100) as connections:
        assert_spread(connections, port, workers)


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(served) -> None:
    parent, port, log = served
    workers = wait_for_workers(parent, port, 2, log)
    os.kill(workers[0], signal.SIGKILL)
    replaced = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(replaced) < 2:
        replaced = [pid for pid in listening_workers(parent.pid, port) if pid != workers[0]]
        time.sleep(0.1)
    assert len(replaced) == 2 and workers[1] in replaced, log.read_text()
    with connected_together(port, 100) as connections:
        assert_spread(connections, port, replaced)

    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=40) == 0, log.read_text()
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists()
    assert "Traceback" not in log.read_text()


def migrates_waiting_connections() -> bool:
    """Whether Linux hands the connections waiting on a closing listener to another listener of
    its port (net.ipv4.tcp_migrate_req, Linux 5.14+); without it they are reset."""
    setting = Path("/proc/sys/net/ipv4/tcp_migrate_req")
    return setting.exists() and setting.read_text().strip() == "1"


def test_sighup_replaces_each_worker_and_the_port_never_closes(served) -> None:
    parent, port, log = served
    old = set(wait_for_workers(parent, port, 2, log))
    answered, refused, reset, unanswered, done = [], [], [], [], threading.Event()

    def keep_asking() -> None:  # a new connection each time, as browsers after an idle spell
        while not done.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Connection: close\r\n\r\n")
                    answer = conn.recv(4096)
                if not answer:
                    unanswered.append(answer)
                    continue
                answered.append(answer.startswith(b"HTTP/1.1 200"))
            except ConnectionRefusedError as exc:
                refused.append(exc)
            except ConnectionResetError as exc:
                reset.append(exc)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        parent.send_signal(signal.SIGHUP)
        new: set[int] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (len(new) == 2 and not new & old):
            new = set(listening_workers(parent.pid, port))
            time.sleep(0.1)
    finally:
        done.set()
        asker.join()
    assert len(new) == 2 and not new & old, log.read_text()
    assert answered and all(answered) and refused == []
    # A connection still waiting to be accepted when its worker's listener closes is reset,
    # unless the kernel migrates it (README: On PostgreSQL); one a stopping worker accepted just
    # before it read the request is closed unanswered (uvicorn's shutdown closes idle
    # connections). The asker connects ~1,000 times a second, browsers after an idle spell far
    # less often.
    if migrates_waiting_connections():
        assert reset == []
    assert len(reset) + len(unanswered) <= len(answered) // 100, (
        len(reset), len(unanswered), len(answered))

    # The supervisor killed outright takes its workers with it: none serves the port unwatched.
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in new):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in new)

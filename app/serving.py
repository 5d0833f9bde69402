"""`prefloop serve`: uvicorn workers, each accepting connections on its own socket.

uvicorn's own `--workers` share one listening socket, and a worker that wakes takes every
connection waiting on it at once (uvloop accepts until the queue is empty): 100 connections
opened together went 98 to 100 to one of two workers. A keep-alive connection then stays with the
worker that took it, and the raters on the busier worker waited several times as long for each
judgment as the others. Here every worker binds its own socket to the address with SO_REUSEPORT, and Linux
hands each new connection to one of them by a hash of its addresses: an even spread whoever is
awake. Elsewhere (no such balancing) and with one worker, uvicorn serves as it does by itself.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from typing import Any

import uvicorn

APP = "app.main:create_served_app"
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that could not start: it would fail again
GRACEFUL_SECONDS = 30  # a stopping worker finishes the requests it has begun, for this long at most
READY_SECONDS = 60  # a new worker on SIGHUP imports the app and listens within this, or is dropped
PR_SET_PDEATHSIG = 1  # linux/prctl.h
logger = logging.getLogger("uvicorn.error")


def serve(host: str, port: int, workers: int, **options: Any) -> int:
    """Serve until SIGINT or SIGTERM; the exit status (0, or STARTUP_FAILURE)."""
    if workers == 1 or not balances_reused_ports():
        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, **options)
        return 0
    # Held, never listening (so it gets no connections), while the workers run: the address is
    # checked once, here, and port 0 becomes one port for them all.
    try:
        held = reuse_port_socket(host, port)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    with held:
        return supervise(host, held.getsockname()[1], workers, options)


def balances_reused_ports() -> bool:
    """Whether the kernel spreads connections over sockets sharing a port (Linux 3.9 and later)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other sockets of this user may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def supervise(host: str, port: int, count: int, options: dict[str, Any]) -> int:
    """Run `count` workers until SIGINT, SIGTERM or SIGQUIT: a worker that dies is replaced, and
    SIGHUP replaces each in turn (the new one listening before the old one stops: no connection
    refused while new code loads)."""
    stop, reload = threading.Event(), threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    workers = [Worker.start(host, port, options) for _ in range(count)]
    failed = False
    while not stop.wait(0.5):
        if reload.is_set():
            reload.clear()
            replace_each(workers, stop)
        for index, worker in enumerate(workers):
            if worker.process.is_alive():
                continue
            if worker.process.exitcode == STARTUP_FAILURE:
                logger.error("Worker [%s] could not start; stopping.", worker.process.pid)
                failed = True
                stop.set()
                break
            logger.warning("Worker [%s] exited (%s); starting another.", worker.process.pid,
                           worker.process.exitcode)
            workers[index] = worker.again()
    stop_all(workers)
    return STARTUP_FAILURE if failed else 0


@dataclass
class Worker:
    """A worker process and the flag it raises once it listens."""

    process: BaseProcess
    ready: EventType
    host: str
    port: int
    options: dict[str, Any]

    @classmethod
    def start(cls, host: str, port: int, options: dict[str, Any]) -> Worker:
        # spawn, as uvicorn's workers: nothing of this process (threads, connections) is copied.
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        process = context.Process(target=run_worker, name="prefloop-worker",
                                  args=(host, port, options, ready, os.getpid()))
        process.start()
        return cls(process, ready, host, port, options)

    def again(self) -> Worker:
        """A new worker in this one's place (a new process; this one is left as it is)."""
        return Worker.start(self.host, self.port, self.options)

    def wait_until_listening(self, stop: threading.Event) -> bool:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline and not stop.is_set():
            if self.ready.wait(0.2):
                return True
            if not self.process.is_alive():
                return False
        return False


def replace_each(workers: list[Worker], stop: threading.Event) -> None:
    """A new worker for each old one, in turn; the old one stops once the new one listens."""
    for index, old in enumerate(workers):
        new = old.again()
        if not new.wait_until_listening(stop):
            stop_all([new])
            if not stop.is_set():
                logger.error("Worker [%s] did not start; keeping the others as they are.",
                             new.process.pid)
            return
        stop_all([old])
        workers[index] = new


def stop_all(workers: list[Worker]) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then SIGKILL for any still running after the grace."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    for worker in workers:
        worker.process.join(GRACEFUL_SECONDS)
        if worker.process.is_alive():
            logger.warning("Worker [%s] did not stop in %d s; killing it.", worker.process.pid,
                           GRACEFUL_SECONDS)
            worker.process.kill()
            worker.process.join()


class ListeningServer(uvicorn.Server):
    """uvicorn's server, raising a flag for the supervisor once it listens."""

    def __init__(self, config: uvicorn.Config, ready: EventType) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


def run_worker(host: str, port: int, options: dict[str, Any], ready: EventType,
               supervisor: int) -> None:
    """One worker process: the app on its own socket, until SIGINT or SIGTERM."""
    stop_with(supervisor)
    server = ListeningServer(uvicorn.Config(APP, factory=True, host=host, port=port, **options),
                             ready)
    try:
        sock = reuse_port_socket(host, port)
    except OSError as exc:
        logger.error("Worker could not bind %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def stop_with(supervisor: int) -> None:
    """SIGTERM this worker when its supervisor dies (even by SIGKILL): no worker goes on serving
    the port unsupervised, beside the next supervisor's."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)

"""The worker's loop: fire due schedules, claim a round, run it, repeat; survive the database going away."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.errors import AppError
from app.services.schedules import fire_due_schedules
from app.worker.lease import LeaseKeeper, claim_round
from app.worker.pipeline import RoundContext, Step, context_for, run_round
from app.worker.publish import publish
from app.worker.runner import StepFailed
from app.worker.snapshot import snapshot
from app.worker.training import gate, generate, policy, reward

log = logging.getLogger("prefloop.worker")
STEPS: dict[str, Step] = {
    "snapshot": snapshot, "reward": reward, "policy": policy,
    "gate": gate, "generate": generate, "publish": publish,
}  # fmt: skip


def new_worker_id() -> str:
    """host:pid:random, unique across restarts, readable on the rounds page."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _fire_schedules(factory: sessionmaker[Session]) -> None:
    with factory() as session, session.begin():
        for fired in fire_due_schedules(session):
            log.info("schedule %s queued round %s (%s)", fired.schedule_id, fired.id, fired.trigger)


def _claim(factory: sessionmaker[Session], worker_id: str) -> tuple[int, RoundContext | str] | None:
    """(round id, its context or the reason it cannot run) of a newly claimed round, or None."""
    settings = get_settings()
    with factory() as session, session.begin():
        claimed = claim_round(
            session, worker_id=worker_id, lease_seconds=settings.worker_lease_seconds,
            max_attempts=settings.worker_max_attempts,
        )  # fmt: skip
        if claimed is None:
            return None
        lease = LeaseKeeper(factory, round_id=claimed.id, worker_id=worker_id,
                            lease_seconds=settings.worker_lease_seconds)  # fmt: skip
        try:
            return claimed.id, context_for(claimed, factory=factory, lease=lease)
        except (StepFailed, AppError) as exc:  # a bad config or no campaign: fail it, go on
            claimed.status, claimed.error = "failed", f"cannot run: {exc}"[:500]
            return claimed.id, str(exc)


def work_once(
    factory: sessionmaker[Session], worker_id: str, steps: dict[str, Step] = STEPS
) -> str | None:
    """Fire schedules, then claim and run one round; its final status, or None when idle."""
    _fire_schedules(factory)
    claimed = _claim(factory, worker_id)
    if claimed is None:
        return None
    round_id, ctx = claimed
    if isinstance(ctx, str):
        return "failed"
    log.info("worker %s runs round %s", worker_id, round_id)
    with ctx.lease:
        return run_round(ctx, steps)


def run_worker(
    factory: sessionmaker[Session],
    *,
    worker_id: str | None = None,
    until_idle: bool = False,
    stop: threading.Event | None = None,
    on_round: Callable[[str], None] | None = None,
) -> None:
    """Loop until stopped (or, with `until_idle`, until no round is left to claim)."""
    worker_id = worker_id or new_worker_id()
    stop = stop or threading.Event()
    poll = get_settings().worker_poll_seconds
    log.info("worker %s started", worker_id)
    while not stop.is_set():
        try:
            status = work_once(factory, worker_id)
        except DBAPIError as exc:  # the database restarted or is away: wait, then reconnect
            log.warning(
                "database unavailable (%s); retrying in %gs", type(exc.orig).__name__, poll
            )
            stop.wait(poll)
            continue
        if status is not None:
            if on_round:
                on_round(status)
            continue
        if until_idle:
            return
        stop.wait(poll)
    log.info("worker %s stopped", worker_id)

"""Claiming rounds race-free, and holding them: a lease renewed by a heartbeat thread.

Claiming locks the oldest claimable round (FOR UPDATE SKIP LOCKED on PostgreSQL, the database
write lock on SQLite, as rater assignments do). Claimable: queued, or running under a lease that
expired (its worker died); such a takeover resumes from the round's last completed step.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.models import TrainingRound, utcnow

log = logging.getLogger("prefloop.worker")


def _claimable(now: datetime) -> object:
    return or_(
        TrainingRound.status == "queued",
        and_(TrainingRound.status == "running", TrainingRound.lease_expires_at < now),
    )


def claim_round(
    session: Session,
    *,
    worker_id: str,
    lease_seconds: int,
    max_attempts: int,
    now: datetime | None = None,
) -> TrainingRound | None:
    """The oldest queued (or abandoned) round, now running under this worker's lease; or None."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "sqlite":
        # No row locks on SQLite: a no-op write takes the database write lock first, so the
        # select below reads the latest commit and no other worker claims until we commit.
        session.execute(
            update(TrainingRound)
            .where(TrainingRound.status.in_(("queued", "running")))
            .values(status=TrainingRound.status)
        )
    stmt = (
        select(TrainingRound)
        .where(_claimable(now))  # type: ignore[arg-type]
        .order_by(TrainingRound.created_at, TrainingRound.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    while (found := session.scalar(stmt)) is not None:
        if found.cancel_requested:
            found.status, found.finished_at = "cancelled", now
        elif found.attempts >= max_attempts:
            found.status, found.finished_at = "failed", now
            found.error = (
                f"abandoned: {found.attempts} workers held this round and lost it "
                f"(last: {found.worker_id}); it is not tried again"
            )
        else:
            found.status, found.worker_id = "running", worker_id
            found.lease_expires_at = now + timedelta(seconds=lease_seconds)
            found.heartbeat_at = now
            found.attempts += 1
            found.started_at = found.started_at or now
            session.flush()
            return found
        session.flush()
    return None


def renew_lease(
    session: Session, *, round_id: int, worker_id: str, lease_seconds: int
) -> tuple[bool, bool]:
    """Extend our lease: (still ours, cancel requested). Not ours means stop at once."""
    now = utcnow()
    result = session.execute(
        update(TrainingRound)
        .where(
            TrainingRound.id == round_id,
            TrainingRound.worker_id == worker_id,
            TrainingRound.status == "running",
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        return False, False
    cancel = session.scalar(
        select(TrainingRound.cancel_requested).where(TrainingRound.id == round_id)
    )
    return True, bool(cancel)


class LeaseKeeper:
    """A daemon thread that renews a round's lease every third of its length.

    `lost` is set when the lease is no longer ours (another worker took the round) or could not
    be renewed before it expired (the database was unreachable): the round must stop.
    """

    def __init__(
        self, factory: sessionmaker[Session], *, round_id: int, worker_id: str, lease_seconds: int
    ) -> None:
        self.factory, self.round_id, self.worker_id = factory, round_id, worker_id
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._expires = utcnow() + timedelta(seconds=lease_seconds)
        self._thread = threading.Thread(target=self._run, name=f"lease-{round_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def beat(self) -> None:
        """Renew once now (also called between steps)."""
        try:
            with self.factory() as session, session.begin():
                held, cancel = renew_lease(
                    session, round_id=self.round_id, worker_id=self.worker_id,
                    lease_seconds=self.lease_seconds,
                )  # fmt: skip
        except Exception as exc:  # the database is away: keep trying until the lease runs out
            log.warning("round %s: heartbeat failed (%s)", self.round_id, type(exc).__name__)
            if utcnow() >= self._expires:
                self.lost.set()
            return
        if not held:
            self.lost.set()
            return
        self._expires = utcnow() + timedelta(seconds=self.lease_seconds)
        if cancel:
            self.cancel.set()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            self.beat()
            if self.lost.is_set():
                return

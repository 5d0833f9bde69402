"""Training rounds: queue one for a worker to claim."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.models import Campaign, TrainingRound
from app.services.audit import record_event

ROUND_METHODS = ("rloo", "ppo", "dpo")  # as the training_rounds check constraint allows


def queue_round(
    session: Session,
    *,
    campaign_id: int | None,
    method: str = "rloo",
    config: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> TrainingRound:
    """A queued round; the worker that claims it fixes its data snapshot."""
    if method not in ROUND_METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(ROUND_METHODS)}", field="method")
    if campaign_id is not None and session.get(Campaign, campaign_id) is None:
        raise NotFound(f"no campaign with id {campaign_id}", field="campaign_id")
    training_round = TrainingRound(
        campaign_id=campaign_id,
        method=method,
        config=dict(config or {}),
        status="queued",
        created_by_id=actor_id,
    )
    session.add(training_round)
    session.flush()
    record_event(
        session,
        action="round.queue",
        actor_id=actor_id,
        target_type="training_round",
        target_id=training_round.id,
        details={"method": method},
    )
    return training_round

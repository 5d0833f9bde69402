"""Write routes (write-scope tokens): bulk comparisons and queuing a training round."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.api.deps import ERRORS, WriteRoute, WriteToken
from app.db import SessionDep
from app.schemas.common import MAX_ID
from app.schemas.resources import RoundOut
from app.schemas.writes import BulkComparisonsIn, BulkCreatedOut, RoundIn
from app.services.bulk import bulk_create_comparisons
from app.services.rounds import queue_round

router = APIRouter(responses=ERRORS, route_class=WriteRoute)


@router.post(
    "/campaigns/{campaign_id}/comparisons",
    status_code=201,
    response_model=BulkCreatedOut,
    tags=["comparisons"],
)
def create_comparisons(
    session: SessionDep,
    token: WriteToken,
    campaign_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: BulkComparisonsIn,
) -> Any:
    """Create prompts, responses and comparisons in bulk: all of them, or none and a 4xx."""
    comparisons = bulk_create_comparisons(
        session,
        campaign_id=campaign_id,
        records=body.records,
        seed=body.seed,
        actor_id=token.user_id,
    )
    return {
        "created": len(comparisons),
        "comparison_ids": [c.id for c in comparisons],
        "prompt_ids": [c.prompt_id for c in comparisons],
    }


@router.post("/rounds", status_code=201, response_model=RoundOut, tags=["rounds"])
def create_round(session: SessionDep, token: WriteToken, body: RoundIn) -> Any:
    """Queue a training round; a worker claims it and snapshots the judgments."""
    return queue_round(
        session,
        campaign_id=body.campaign_id,
        method=body.method,
        config=body.config,
        actor_id=token.user_id,
    )

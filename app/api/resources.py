"""List and read campaigns, prompts, responses, comparisons, judgments, rounds, model versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.deps import ERRORS, ReadToken
from app.db import SessionDep
from app.schemas.common import MAX_ID, Page
from app.schemas.filters import (
    CampaignFilters,
    ComparisonFilters,
    JudgmentFilters,
    ModelVersionFilters,
    PromptFilters,
    ResponseFilters,
    RoundFilters,
    SkipFilters,
)
from app.schemas.resources import (
    CampaignOut,
    ComparisonOut,
    JudgmentOut,
    ModelVersionOut,
    PromptOut,
    ResponseOut,
    RoundOut,
    SkipOut,
)
from app.services import queries

router = APIRouter(responses=ERRORS)
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The id.")]


def _page(rows_and_cursor: tuple[Any, str | None]) -> dict[str, Any]:
    rows, next_cursor = rows_and_cursor
    return {"items": rows, "next_cursor": next_cursor}


@router.get("/campaigns", response_model=Page[CampaignOut], tags=["campaigns"])
def list_campaigns(
    session: SessionDep, _token: ReadToken, query: Annotated[CampaignFilters, Query()]
) -> Any:
    """Campaigns, oldest first."""
    return _page(queries.list_campaigns(session, query=query))


@router.get("/campaigns/{item_id}", response_model=CampaignOut, tags=["campaigns"])
def read_campaign(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One campaign."""
    return queries.get_one(session, resource="campaigns", item_id=item_id)


@router.get("/prompts", response_model=Page[PromptOut], tags=["prompts"])
def list_prompts(
    session: SessionDep, _token: ReadToken, query: Annotated[PromptFilters, Query()]
) -> Any:
    """Prompts, oldest first."""
    return _page(queries.list_prompts(session, query=query))


@router.get("/prompts/{item_id}", response_model=PromptOut, tags=["prompts"])
def read_prompt(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One prompt."""
    return queries.get_one(session, resource="prompts", item_id=item_id)


@router.get("/responses", response_model=Page[ResponseOut], tags=["responses"])
def list_responses(
    session: SessionDep, _token: ReadToken, query: Annotated[ResponseFilters, Query()]
) -> Any:
    """Responses, oldest first."""
    return _page(queries.list_responses(session, query=query))


@router.get("/responses/{item_id}", response_model=ResponseOut, tags=["responses"])
def read_response(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One response."""
    return queries.get_one(session, resource="responses", item_id=item_id)


@router.get("/comparisons", response_model=Page[ComparisonOut], tags=["comparisons"])
def list_comparisons(
    session: SessionDep, _token: ReadToken, query: Annotated[ComparisonFilters, Query()]
) -> Any:
    """Comparisons, oldest first."""
    return _page(queries.list_comparisons(session, query=query))


@router.get("/comparisons/{item_id}", response_model=ComparisonOut, tags=["comparisons"])
def read_comparison(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One comparison."""
    return queries.get_one(session, resource="comparisons", item_id=item_id)


@router.get("/judgments", response_model=Page[JudgmentOut], tags=["judgments"])
def list_judgments(
    session: SessionDep, _token: ReadToken, query: Annotated[JudgmentFilters, Query()]
) -> Any:
    """Judgments, oldest first; only each rater's latest correction unless asked otherwise."""
    return _page(queries.list_judgments(session, query=query))


@router.get("/judgments/{item_id}", response_model=JudgmentOut, tags=["judgments"])
def read_judgment(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One judgment (live or superseded)."""
    return queries.get_one(session, resource="judgments", item_id=item_id)


@router.get("/skips", response_model=Page[SkipOut], tags=["skips"])
def list_skips(session: SessionDep, _token: ReadToken, query: Annotated[SkipFilters, Query()]) -> Any:
    """Skipped comparisons (reason and note), oldest first: which prompts are outside whose specialty."""
    return _page(queries.list_skips(session, query=query))


@router.get("/skips/{item_id}", response_model=SkipOut, tags=["skips"])
def read_skip(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One skip, by its assignment id."""
    return queries.get_one(session, resource="skips", item_id=item_id)


@router.get("/rounds", response_model=Page[RoundOut], tags=["rounds"])
def list_rounds(
    session: SessionDep, _token: ReadToken, query: Annotated[RoundFilters, Query()]
) -> Any:
    """Training rounds, oldest first."""
    return _page(queries.list_rounds(session, query=query))


@router.get("/rounds/{item_id}", response_model=RoundOut, tags=["rounds"])
def read_round(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One training round."""
    return queries.get_one(session, resource="rounds", item_id=item_id)


@router.get("/model-versions", response_model=Page[ModelVersionOut], tags=["model versions"])
def list_model_versions(
    session: SessionDep, _token: ReadToken, query: Annotated[ModelVersionFilters, Query()]
) -> Any:
    """Model versions, oldest first."""
    return _page(queries.list_model_versions(session, query=query))


@router.get("/model-versions/{item_id}", response_model=ModelVersionOut, tags=["model versions"])
def read_model_version(session: SessionDep, _token: ReadToken, item_id: ItemId) -> Any:
    """One model version."""
    return queries.get_one(session, resource="model-versions", item_id=item_id)

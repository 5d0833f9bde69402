"""Reads for the API: filtered lists with keyset (cursor) pagination, and one row by id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from app.config import get_settings
from app.errors import AppError, NotFound
from app.models import (
    Assignment,
    Campaign,
    Comparison,
    Judgment,
    ModelVersion,
    Prompt,
    Response,
    TrainingRound,
    User,
)
from app.models.rating import AssignmentState
from app.schemas.common import ListQuery
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

M = TypeVar("M")
RESOURCES: dict[str, Any] = {
    "campaigns": Campaign,
    "prompts": Prompt,
    "responses": Response,
    "comparisons": Comparison,
    "judgments": Judgment,
    "skips": Assignment,
    "rounds": TrainingRound,
    "model-versions": ModelVersion,
}


class BadCursor(AppError):
    """A cursor that this server did not hand out for this list."""

    code = "bad_cursor"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key, salt="prefloop.api.cursor")


def encode_cursor(*, resource: str, after_id: int) -> str:
    """An opaque, signed cursor: the last id seen, bound to its resource."""
    return str(_serializer().dumps({"r": resource, "after": after_id}))


def decode_cursor(cursor: str, *, resource: str) -> int:
    """The id a cursor continues after; BadCursor when forged, malformed or for another list."""
    try:
        data = _serializer().loads(cursor)
    except BadSignature as exc:
        raise BadCursor("the cursor is malformed or was not issued here", field="cursor") from exc
    if (
        not isinstance(data, dict)
        or data.get("r") != resource
        or type(data.get("after")) is not int
    ):
        raise BadCursor("the cursor belongs to another list", field="cursor")
    return int(data["after"])


def _page(
    session: Session, *, resource: str, stmt: Select[Any], query: ListQuery
) -> tuple[Sequence[Any], str | None]:
    model = RESOURCES[resource]
    if query.cursor is not None:
        stmt = stmt.where(model.id > decode_cursor(query.cursor, resource=resource))
    if query.created_after is not None:
        stmt = stmt.where(model.created_at >= query.created_after)
    if query.created_before is not None:
        stmt = stmt.where(model.created_at < query.created_before)
    rows = session.scalars(stmt.order_by(model.id).limit(query.limit + 1)).all()
    if len(rows) <= query.limit:
        return rows, None
    rows = rows[: query.limit]
    return rows, encode_cursor(resource=resource, after_id=rows[-1].id)


def _where(stmt: Select[Any], **conditions: Any) -> Select[Any]:
    # Each keyword is `column == value` unless its value is None (filter not given).
    for clause, value in conditions.values():
        if value is not None:
            stmt = stmt.where(clause == value)
    return stmt


def list_campaigns(session: Session, *, query: CampaignFilters) -> tuple[Sequence[Any], str | None]:
    """A page of campaigns."""
    stmt = _where(select(Campaign), status=(Campaign.status, query.status))
    return _page(session, resource="campaigns", stmt=stmt, query=query)


def list_prompts(session: Session, *, query: PromptFilters) -> tuple[Sequence[Any], str | None]:
    """A page of prompts."""
    stmt = _where(
        select(Prompt),
        campaign=(Prompt.campaign_id, query.campaign_id),
        external_id=(Prompt.external_id, query.external_id),
    )
    return _page(session, resource="prompts", stmt=stmt, query=query)


def list_responses(session: Session, *, query: ResponseFilters) -> tuple[Sequence[Any], str | None]:
    """A page of responses."""
    stmt = _where(
        select(Response).join(Prompt, Prompt.id == Response.prompt_id),
        campaign=(Prompt.campaign_id, query.campaign_id),
        prompt=(Response.prompt_id, query.prompt_id),
        label=(Response.model_label, query.model_label),
    )
    return _page(session, resource="responses", stmt=stmt, query=query)


def list_comparisons(
    session: Session, *, query: ComparisonFilters
) -> tuple[Sequence[Any], str | None]:
    """A page of comparisons with their response ids."""
    stmt = _where(
        select(Comparison).options(selectinload(Comparison.items)),
        campaign=(Comparison.campaign_id, query.campaign_id),
        round=(Comparison.round_id, query.round_id),
        gold=(Comparison.is_gold, query.is_gold),
    )
    return _page(session, resource="comparisons", stmt=stmt, query=query)


def list_judgments(session: Session, *, query: JudgmentFilters) -> tuple[Sequence[Any], str | None]:
    """A page of judgments (the live ones unless superseded ones are asked for)."""
    stmt = _where(
        select(Judgment)
        .join(User, User.id == Judgment.rater_id)
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .options(selectinload(Judgment.rater)),
        campaign=(Comparison.campaign_id, query.campaign_id),
        round=(Comparison.round_id, query.round_id),
        comparison=(Judgment.comparison_id, query.comparison_id),
        rater=(User.pseudonym, query.rater),
    )
    if not query.include_superseded:
        stmt = stmt.where(Judgment.is_live())
    return _page(session, resource="judgments", stmt=stmt, query=query)


def _skips() -> Select[Any]:
    return (
        select(Assignment)
        .where(Assignment.state == AssignmentState.SKIPPED)
        .options(selectinload(Assignment.rater))
    )


def list_skips(session: Session, *, query: SkipFilters) -> tuple[Sequence[Any], str | None]:
    """A page of skipped comparisons with their reason and note."""
    stmt = _where(
        _skips()
        .join(User, User.id == Assignment.rater_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id),
        campaign=(Comparison.campaign_id, query.campaign_id),
        comparison=(Assignment.comparison_id, query.comparison_id),
        rater=(User.pseudonym, query.rater),
        reason=(Assignment.skip_reason, query.reason),
    )
    return _page(session, resource="skips", stmt=stmt, query=query)


def list_rounds(session: Session, *, query: RoundFilters) -> tuple[Sequence[Any], str | None]:
    """A page of training rounds."""
    stmt = _where(
        select(TrainingRound),
        campaign=(TrainingRound.campaign_id, query.campaign_id),
        status=(TrainingRound.status, query.status),
    )
    return _page(session, resource="rounds", stmt=stmt, query=query)


def list_model_versions(
    session: Session, *, query: ModelVersionFilters
) -> tuple[Sequence[Any], str | None]:
    """A page of model versions."""
    stmt = _where(
        select(ModelVersion),
        round=(ModelVersion.round_id, query.round_id),
        kind=(ModelVersion.kind, query.kind),
    )
    return _page(session, resource="model-versions", stmt=stmt, query=query)


def get_one(session: Session, *, resource: str, item_id: int) -> Any:
    """One row of `resource` by id, or NotFound."""
    model = RESOURCES[resource]
    options = {
        "comparisons": [selectinload(Comparison.items)],
        "judgments": [selectinload(Judgment.rater)],
    }.get(resource, [])
    if resource == "skips":  # an assignment that is not (or no longer) skipped is not a skip
        row = session.scalar(_skips().where(Assignment.id == item_id))
    else:
        row = session.get(model, item_id, options=options)
    if row is None:
        raise NotFound(f"no {resource.rstrip('s').replace('-', ' ')} with id {item_id}", field="id")
    return row

"""Shared API shapes: the error body, a page of results, and the base of list queries."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

T = TypeVar("T")
MAX_ID = 2_147_483_647  # ids are 32-bit in the database: larger ones are refused, not a 500
MAX_PAGE = 500
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# PostgreSQL text cannot hold NUL; refusing it here keeps such input a 422.
SafeStr = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    # Pydantic would also read "0.5" as a Unix time; an API date is ISO 8601 and nothing else.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("give an ISO 8601 time, e.g. 2026-01-31T00:00:00Z")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-01-31T00:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_aware)]


class ErrorOut(BaseModel):
    """Every API error: a stable code, a sentence, and the field at fault if any."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"code": "bad_cursor", "message": "the cursor is malformed", "field": "cursor"}
            ]
        }
    )

    code: str
    message: str
    field: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of results; pass `next_cursor` back as `cursor` for the next (null: the end)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque; null when there is no more.")


class ListQuery(BaseModel):
    """Paging and the creation-time window every list takes; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")
    cursor: str | None = Field(
        None, max_length=500, description="The `next_cursor` of the previous page."
    )
    created_after: IsoTime | None = Field(None, description="At or after (ISO 8601, with zone).")
    created_before: IsoTime | None = Field(None, description="Before (ISO 8601, with zone).")

"""GET /api/v1/export: preference data, streamed as JSONL or Parquet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.api.deps import ERRORS, ReadToken
from app.db import StreamingSessionDep
from app.schemas.export import ExportQuery
from app.services.export import start_export
from app.services.export.writers import jsonl_chunks
from trainer.schema import PairwiseRecord

router = APIRouter(responses=ERRORS)

# The documented line is written by the export's own writer from a schema record: it cannot drift.
_EXAMPLE = PairwiseRecord(
    prompt="...", chosen="...", rejected="...", margin=2.0, comparison_id=7, judgment_id=42,
    rater="r-1a2b3c4d", campaign="cardiology triage", rejected_flags=["factually_wrong"],
)  # fmt: skip
_CONTENT = {
    "application/x-ndjson": {
        "schema": {"type": "string"},
        "example": b"".join(jsonl_chunks([_EXAMPLE.model_dump()])).decode(),
    },
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"description": "The export file, streamed.", "content": _CONTENT}},
    tags=["export"],
)
def export(
    session: StreamingSessionDep, _token: ReadToken, query: Annotated[ExportQuery, Query()]
) -> StreamingResponse:
    """Export judgments as TRL-ready pairs, raw rankings, or per-comparison aggregates."""
    result = start_export(session, query=query)
    return StreamingResponse(
        result.chunks,
        media_type=result.media_type,
        headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
    )

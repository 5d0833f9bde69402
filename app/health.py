"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_engine
from app.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    """200 while the process lives."""
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated")
def readyz() -> JSONResponse:
    """200 only when the database answers and is at the code's migration head; 503 otherwise."""
    try:
        current = current_revision(get_engine())
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "reason": "database unreachable"}, 503)
    head = head_revision()
    if current != head:
        reason = f"database at revision {current}, code expects {head}: run `prefloop db upgrade`"
        return JSONResponse({"status": "unavailable", "reason": reason}, 503)
    return JSONResponse({"status": "ok", "revision": current})

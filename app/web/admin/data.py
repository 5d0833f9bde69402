"""Data in and out: upload an import (four formats), download an export (the API's options)."""

from __future__ import annotations

import gzip
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import UploadFile

from app.db import SessionDep, StreamingSessionDep
from app.errors import AppError, ImportRejected
from app.models import Campaign, User
from app.schemas.export import ExportQuery
from app.services.export import start_export
from app.services.external_imports import UPLOAD_FORMATS, import_file
from app.web.admin.common import field_errors, show
from app.web.auth import AdminDep, CsrfDep
from app.web.forms import integer, text
from app.web.pages import FormDep

router = APIRouter()
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def _imports(request: Request, session: SessionDep, admin: User, **context: Any) -> Response:
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.name)))
    context.setdefault("errors", {})
    return show(request, "admin/imports.html", admin, "Imports", campaigns=campaigns,
                formats=UPLOAD_FORMATS, **context)  # fmt: skip


@router.get("/imports")
def imports(request: Request, session: SessionDep, admin: AdminDep) -> Response:
    """The upload form."""
    return _imports(request, session, admin, report=None, problems=[])


def _lines(upload: UploadFile) -> list[str]:
    raw = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise AppError(f"the file is over {MAX_UPLOAD_BYTES // 2**20} MiB; split it", field="file")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise AppError("the file is not UTF-8 text", field="file") from None


@router.post("/imports", dependencies=[CsrfDep])
def upload(request: Request, session: SessionDep, admin: AdminDep, form: FormDep) -> Response:
    """Import the file, all or nothing; every bad line is listed with its number and reason."""
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise AppError("choose a file", field="file")
        report = import_file(session, campaign_id=integer(form, "campaign_id") or 0,
                             fmt=text(form, "format"), lines=_lines(upload),
                             limit=integer(form, "limit", required=False),
                             actor_id=admin.id)  # fmt: skip
    except ImportRejected as exc:
        return _imports(request, session, admin, report=None, problems=exc.problems,
                        errors={"file": exc.message})  # fmt: skip
    except AppError as exc:
        return _imports(request, session, admin, report=None, problems=[], errors=field_errors(exc))
    return _imports(request, session, admin, report=report, problems=[])


@router.get("/export")
def export_form(request: Request, session: SessionDep, admin: AdminDep) -> Response:
    """The export's options (those of GET /api/v1/export) as a form."""
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.name)))
    return show(request, "admin/export.html", admin, "Export", campaigns=campaigns, errors={},
                fields=ExportQuery.model_fields, values={})  # fmt: skip


@router.get("/export/download")
def download(request: Request, session: StreamingSessionDep, admin: AdminDep) -> Response:
    """The export file, streamed; bad options come back as the form with the field marked."""
    values = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        query = ExportQuery.model_validate(values)
        result = start_export(session, query=query)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "form"
        errors = {field: str(first["msg"]).removeprefix("Value error, ")}
        return _export_again(request, session, admin, values, errors)
    except AppError as exc:
        return _export_again(request, session, admin, values, field_errors(exc))
    return StreamingResponse(result.chunks, media_type=result.media_type,
        headers={"Content-Disposition": f'attachment; filename="{result.filename}"'})  # fmt: skip


def _export_again(request: Request, session: Any, admin: User, values: dict[str, str],
                  errors: dict[str, str]) -> Response:  # fmt: skip
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.name)))
    return show(request, "admin/export.html", admin, "Export", campaigns=campaigns, errors=errors,
                fields=ExportQuery.model_fields, values=values)  # fmt: skip

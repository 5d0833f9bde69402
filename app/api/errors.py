"""Errors on /api paths: always JSON `{code, message, field}`, never an HTML page or a 500."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from app.errors import AppError

API_PREFIX = "/api/"


def is_api(request: Request) -> bool:
    """True for requests to the JSON API."""
    return request.url.path.startswith(API_PREFIX)


def api_error_response(exc: AppError) -> Response:
    """The JSON body of an AppError; a 401 says which scheme to use."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _field(loc: Sequence[Any]) -> str | None:
    # ("query", "limit") -> "limit"; ("body", "records", 3, "prompt") -> "records.3.prompt"
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("query", "body", "path") else []
    return ".".join(parts) or (str(loc[0]) if loc else None)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not is_api(request):
        return await request_validation_exception_handler(request, exc)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = _field(first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"unknown parameter {field!r}"
    body = {
        "code": "invalid",
        "message": f"{field}: {message}" if field else message,
        "field": field,
    }
    return JSONResponse(body, status_code=422)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not is_api(request):
        return await http_exception_handler(request, exc)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    body = {
        "code": codes.get(exc.status_code, "http_error"),
        "message": str(exc.detail),
        "field": None,
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _data(request: Request, exc: Exception) -> Response:
    # A value the database cannot store (out of range, NUL in text) that validation let through.
    if not is_api(request):
        raise exc
    body = {"code": "invalid", "message": "a value is out of range for the database", "field": None}
    return JSONResponse(body, status_code=422)


def install_api_error_handlers(app: FastAPI) -> None:
    """Make every error on /api paths a JSON body with code, message and field."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DataError, _data)

"""Errors on /api paths: always JSON `{code, message, field}`, never an HTML page or a 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from app.errors import AppError, ValidationFailed

API_PREFIX = "/api/"
Handler = Callable[[Request, Exception], Awaitable[Response]]


def is_api(request: Request) -> bool:
    """True for requests to the JSON API."""
    return request.url.path.startswith(API_PREFIX)


def api_error_response(exc: AppError) -> Response:
    """The JSON body of an AppError; a 401 says which scheme to use."""
    headers = dict(exc.headers)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _field(loc: Sequence[Any]) -> str | None:
    # ("query", "limit") -> "limit"; ("body", "records", 3, "prompt") -> "records.3.prompt"
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("query", "body", "path") else []
    return ".".join(parts) or (str(loc[0]) if loc else None)


def _validation_body(exc: RequestValidationError) -> dict[str, Any]:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        # Its loc is ("body", character offset): a position is not a field.
        ctx = first.get("ctx")
        reason = str(ctx.get("error", "")).split(":")[0] if isinstance(ctx, dict) else ""
        message = "the body is not valid JSON" + (f" ({reason})" if reason else "")
        return {"code": "invalid", "message": message, "field": "body"}
    field = _field(first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = f"unknown parameter {field!r}"
    return {
        "code": "invalid",
        "message": f"{field}: {message}" if field else message,
        "field": field,
    }


def install_api_error_handlers(app: FastAPI, app_error_handler: Handler) -> None:
    """Make every error on /api paths a JSON body with code, message and field.

    Off /api, a bad path or form value and a value the database cannot hold become the same
    AppErrors pages already show (422), never a 500.
    """

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        body = _validation_body(exc)
        if not is_api(request):
            failed = ValidationFailed(body["message"], field=body["field"])
            return await app_error_handler(request, failed)
        return JSONResponse(body, status_code=422)

    async def data(request: Request, exc: Exception) -> Response:
        # A value the database cannot store (out of range, NUL in text) that validation let through.
        failed = ValidationFailed("a value is out of range for the database")
        if not is_api(request):
            return await app_error_handler(request, failed)
        return JSONResponse(failed.to_dict(), status_code=422)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(DataError, data)


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

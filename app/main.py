"""create_app(): the FastAPI application with its routers, static files and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import health
from app.api import docs as api_docs
from app.api import router as api_router
from app.api.errors import api_error_response, install_api_error_handlers, is_api
from app.config import get_settings
from app.db import REPO_ROOT, dispose_async_engine
from app.errors import AppError, Unavailable
from app.middleware import BodyLimit, SecurityHeaders
from app.web import router as web_router
from app.web.errors import html_error, wants_html


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if is_api(request):
        return api_error_response(exc)
    if wants_html(request):
        return html_error(request, exc)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # The database restarting or unreachable: a clear 503 (the transaction rolled back, so nothing
    # was stored), never a 500. The pool replaces dead connections (app.db pings idle ones and
    # drops the rest on a disconnect error) once it is back; no server restart.
    unavailable = Unavailable(
        "The database is not answering; nothing was saved. Try again in a few seconds.",
        retry_after=2,
    )
    return await _app_error_handler(request, unavailable)


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Sync routes and dependencies run on this many threads; the session gate (app.db) keeps
    # requests holding connections to no more than the pool, which the settings keep below this.
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().threads
    yield
    await dispose_async_engine()


def create_app() -> FastAPI:
    """Build the app; settings are validated first, so a production default secret refuses here."""
    get_settings()
    app = FastAPI(
        title="prefloop",
        version="0.1.0",
        description="Physicians rank clinical assistant responses; rounds train on their preferences.",
        docs_url=None,  # served by app.api.docs from vendored Swagger UI, not a CDN
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(api_docs.router)
    app.include_router(web_router)
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)  # every connection busy
    install_api_error_handlers(app, _app_error_handler)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so even a 413 carries them
    return app

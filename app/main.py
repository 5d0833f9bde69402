"""create_app(): the FastAPI application with its routers, static files and error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from app import health
from app.api import docs as api_docs
from app.api import router as api_router
from app.api.errors import api_error_response, install_api_error_handlers, is_api
from app.config import get_settings
from app.db import REPO_ROOT
from app.errors import AppError
from app.web import router as web_router
from app.web.errors import html_error, wants_html


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if is_api(request):
        return api_error_response(exc)
    if wants_html(request):
        return html_error(request, exc)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code)


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Sync routes and dependencies run on this many threads; the session gate (app.db) keeps
    # requests holding connections to no more than the pool, which the settings keep below this.
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().threads
    yield


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
    install_api_error_handlers(app)
    return app

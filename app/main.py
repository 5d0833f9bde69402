"""create_app(): the FastAPI application with its routers, static files and error handlers."""

from __future__ import annotations

import gc
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
from app.web import routers as web_routers
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


# A served worker's cyclic garbage collector: young collections every this many new objects, not
# Python's 700 (see settle_heap_for_serving).
YOUNG_GC_THRESHOLD = 10_000


def settle_heap_for_serving() -> None:
    """Keep the garbage collector's pauses off a serving worker's requests.

    The ~160,000 objects the app's imports and routes leave (modules, classes, functions) live as
    long as the process: frozen, full collections no longer walk them (each walk blocked the event
    loop up to 150 ms under load, every few seconds: the p99 of every request in flight). Young
    collections every YOUNG_GC_THRESHOLD allocations: fewer of them, and fewer in-flight
    request objects promoted to the old generations just because a collection caught them alive.
    Cyclic garbage is still collected, later; the memory it may hold meanwhile is small.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Sync routes and dependencies run on this many threads; the session gate (app.db) keeps
    # requests holding connections to no more than the pool, which the settings keep below this.
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().threads
    if app.state.serving:
        settle_heap_for_serving()
    yield
    await dispose_async_engine()


def create_app(*, serving: bool = False) -> FastAPI:
    """Build the app; settings are validated first, so a production default secret refuses here.

    `serving`: the app is a server worker's whole process (`prefloop serve`), so it may tune the
    process (settle_heap_for_serving); tests and embedders build it without."""
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
    # First the pages, the rating routes first among them: FastAPI tries routes in order, and
    # the submit every judgment makes went through the API's ~70 routes before its own.
    for router in web_routers:
        app.include_router(router, include_in_schema=False)
    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(api_docs.router)
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)  # every connection busy
    install_api_error_handlers(app, _app_error_handler)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so even a 413 carries them
    app.state.serving = serving
    return app


def create_served_app() -> FastAPI:
    """The app as each `prefloop serve` worker runs it (uvicorn's factory)."""
    return create_app(serving=True)

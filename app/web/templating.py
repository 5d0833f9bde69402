"""Templates: one Jinja environment; a page, or one named block of it for an htmx request."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.config import get_settings
from app.db import REPO_ROOT
from app.models.campaigns import MAX_LEASE_MINUTES, MAX_OVERLAP, MIN_LEASE_MINUTES, MIN_OVERLAP
from app.models.rating import MAX_NOT_RANKABLE_REASON, MAX_RATIONALE
from app.models.review import MAX_REVIEW_NOTE
from app.rendering import render_markdown_cached
from app.web.auth import csrf_token


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment: autoescaped, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(REPO_ROOT / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Checking every template's file time on every render is a stat per page; only a
        # developer editing templates under a running server needs it.
        auto_reload=get_settings().env == "development",
    )
    env.filters["markdown"] = render_markdown_cached
    env.globals["csrf_token"] = csrf_token
    # The bounds forms show are the models' own constants (which also build the checks).
    env.globals |= {
        "max_rationale": MAX_RATIONALE,
        "max_not_rankable_reason": MAX_NOT_RANKABLE_REASON,
        "max_review_note": MAX_REVIEW_NOTE,
        "min_overlap": MIN_OVERLAP,
        "max_overlap": MAX_OVERLAP,
        "min_lease_minutes": MIN_LEASE_MINUTES,
        "max_lease_minutes": MAX_LEASE_MINUTES,
    }
    return env


def is_htmx(request: Request) -> bool:
    """True for requests htmx made (they want a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template, or only `block` of it when htmx asked (jinja2-fragments style)."""
    template = environment().get_template(name)
    values = {"request": request, **context}
    if block is not None and is_htmx(request):
        html = "".join(template.blocks[block](template.new_context(values)))
    else:
        html = template.render(values)
    # Security headers (CSP, no-store, nosniff ...) come from app.middleware, on every response.
    return HTMLResponse(html, status_code=status_code, headers=headers)

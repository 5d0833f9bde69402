"""Templates: one Jinja environment; a page, or one named block of it for an htmx request."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.db import REPO_ROOT
from app.rendering import render_markdown_cached
from app.web.auth import csrf_token

# Scripts only from our own origin: even if a sanitiser bug let markup through, no inline script
# or handler would run. htmx is configured (base.html) to need neither eval nor inline styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment: autoescaped, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(REPO_ROOT / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markdown"] = render_markdown_cached
    env.globals["csrf_token"] = csrf_token
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
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )

"""What every admin page shares: paging, redirects after a POST, form errors by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.errors import AppError, FieldErrors
from app.web.templating import render

PER_PAGE = 50


@dataclass(frozen=True)
class Paged:
    """One page of a server-side paged table, with links to its neighbours."""

    rows: list[Any]
    page: int
    pages: int
    total: int
    base: str
    params: dict[str, str]

    def link(self, page: int) -> str:
        """The URL of another page with the same filters."""
        return f"{self.base}?{urlencode({**self.params, 'page': page})}"


def paged(
    session: Session,
    stmt: Select[Any] | Select[tuple[Any, ...]] | Any,
    *,
    page: int,
    base: str,
    params: dict[str, str] | None = None,
    scalars: bool = True,
) -> Paged:
    """Count, then fetch only the rows of `page` (1-based; out-of-range pages clamp)."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(page, 1), pages)
    window = stmt.limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    rows: list[Any] = []
    if scalars:
        rows.extend(session.scalars(window))
    else:
        rows.extend(session.execute(window).all())
    clean = {k: v for k, v in (params or {}).items() if v not in ("", None)}
    return Paged(rows, page, pages, total, base, clean)


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get: the browser's reload never repeats the action."""
    return RedirectResponse(url, status_code=303)


def field_errors(exc: AppError) -> dict[str, str]:
    """An error as {field: message}, for the form to show beside each field."""
    if isinstance(exc, FieldErrors):
        return exc.errors
    return {exc.field or "form": exc.message}


def show(request: Request, name: str, admin: Any, title: str, **context: Any) -> HTMLResponse:
    """An admin page: its template, the admin, the nav entry that is current."""
    return render(request, name, {"user": admin, "title": title, **context},
                  status_code=422 if context.get("errors") else 200)  # fmt: skip

"""API tokens: create (the token is shown once), list with last use, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.db import SessionDep
from app.errors import AppError
from app.models import ApiToken, User
from app.services.tokens import create_token, revoke_token
from app.web.admin.common import field_errors, paged, see_other, show
from app.web.auth import AdminDep, CsrfDep
from app.web.forms import integer, text
from app.web.pages import FormDep

router = APIRouter()


def _page(request: Request, session: SessionDep, admin: User, pg: int, **context: Any) -> Response:
    rows = paged(session, select(ApiToken).order_by(ApiToken.id.desc()), page=pg,
                 base="/admin/tokens")  # fmt: skip
    context.setdefault("errors", {})
    context.setdefault("plaintext", None)
    return show(request, "admin/tokens.html", admin, "API tokens", p=rows, **context)


@router.get("/tokens")
def tokens(request: Request, session: SessionDep, admin: AdminDep, page: int = 1) -> Response:
    """Every token (never the token itself), newest first, with its last use."""
    return _page(request, session, admin, page)


@router.post("/tokens", dependencies=[CsrfDep])
def create(request: Request, session: SessionDep, admin: AdminDep, form: FormDep) -> Response:
    """A new token for the logged-in admin, shown on this page only."""
    try:
        _, plaintext = create_token(session, user=admin, name=text(form, "name"),
                                    scope=text(form, "scope") or "read",
                                    expires_in_days=integer(form, "expires_in_days", required=False),
                                    actor_id=admin.id)  # fmt: skip
    except AppError as exc:
        return _page(request, session, admin, 1, errors=field_errors(exc))
    return _page(request, session, admin, 1, plaintext=plaintext)


@router.post("/tokens/{token_id}/revoke", dependencies=[CsrfDep])
def revoke(session: SessionDep, admin: AdminDep, token_id: int) -> Response:
    """Revoke at once."""
    revoke_token(session, token_id=token_id, actor_id=admin.id)
    return see_other("/admin/tokens")

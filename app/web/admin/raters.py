"""Raters: invite (a one-time link), edit, deactivate, reset a password, clear a login backoff; stats."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.db import SessionDep
from app.errors import AppError
from app.models import User, utcnow
from app.services.quality import compute_quality, fresh_quality, refresh_quality
from app.services.throttle import accounts_backing_off
from app.services.users import (
    clear_lockout,
    get_user,
    invite_user,
    is_external,
    reset_link,
    set_active,
    update_user,
)
from app.web.admin.common import field_errors, paged, see_other, show
from app.web.auth import AdminDep, CsrfDep, PageId
from app.web.forms import text
from app.web.pages import FormDep

router = APIRouter()


def _link(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + f"/invite/{token}"


def _list(request: Request, session: SessionDep, admin: User, pg: int, **extra: object) -> Response:
    rows = paged(session, select(User).order_by(User.id), page=pg, base="/admin/raters")
    stats = compute_quality(session, campaign_id=None).raters
    held = accounts_backing_off(session, emails=[u.email for u in rows.rows], now=utcnow())
    return show(request, "admin/raters.html", admin, "Raters", p=rows, stats=stats,
                is_external=is_external, held_back=held, **extra)  # fmt: skip


def _rater_page(
    request: Request, session: SessionDep, admin: User, user: User, **extra: object
) -> Response:
    held = accounts_backing_off(session, emails=[user.email], now=utcnow())
    return show(request, "admin/rater.html", admin, user.display_name, u=user,
                held_back=held, external=is_external(user), **extra)  # fmt: skip


@router.get("/raters")
def raters(request: Request, session: SessionDep, admin: AdminDep, page: int = 1) -> Response:
    """Every account, paged, with judgments, median time, agreement, gold accuracy, flag rate."""
    refresh_quality(session)
    return _list(request, session, admin, page, errors={}, values={}, link=None)


@router.post("/raters", dependencies=[CsrfDep])
def invite(request: Request, session: SessionDep, admin: AdminDep, form: FormDep) -> Response:
    """Create an account and show its one-time set-password link (once)."""
    values = {k: text(form, k) for k in ("email", "display_name", "specialty", "role")}
    try:
        user, token = invite_user(session, email=values["email"], display_name=values["display_name"],
                                  specialty=values["specialty"], role=values["role"] or "rater",
                                  actor_id=admin.id)  # fmt: skip
    except AppError as exc:
        return _list(request, session, admin, 1, errors=field_errors(exc), values=values, link=None)
    return _list(request, session, admin, 1, errors={}, values={},
                 link=(user.email, _link(request, token)))  # fmt: skip


@router.get("/raters/{user_id}")
def rater(request: Request, session: SessionDep, admin: AdminDep, user_id: PageId) -> Response:
    """One account: edit form, actions, and its quality figures."""
    user = get_user(session, user_id=user_id)
    stats = fresh_quality(session, campaign_id=None).raters.get(user.id)
    return _rater_page(request, session, admin, user, stats=stats, errors={}, link=None)


@router.post("/raters/{user_id}", dependencies=[CsrfDep])
def edit(
    request: Request, session: SessionDep, admin: AdminDep, form: FormDep, user_id: PageId
) -> Response:
    """Set name and specialty."""
    try:
        update_user(session, user_id=user_id, display_name=text(form, "display_name"),
                    specialty=text(form, "specialty"), actor_id=admin.id)  # fmt: skip
    except AppError as exc:
        user = get_user(session, user_id=user_id)
        return _rater_page(
            request, session, admin, user, stats=None, errors=field_errors(exc), link=None
        )
    return see_other(f"/admin/raters/{user_id}")


@router.post("/raters/{user_id}/active", dependencies=[CsrfDep])
def activate(session: SessionDep, admin: AdminDep, form: FormDep, user_id: PageId) -> Response:
    """Deactivate (judgments stay) or reactivate."""
    set_active(session, user_id=user_id, active=text(form, "active") == "1", actor_id=admin.id)
    return see_other(f"/admin/raters/{user_id}")


@router.post("/raters/{user_id}/unlock", dependencies=[CsrfDep])
def unlock(session: SessionDep, admin: AdminDep, user_id: PageId) -> Response:
    """Clear the login backoff that failed logins put on this account."""
    clear_lockout(session, user_id=user_id, actor_id=admin.id)
    return see_other(f"/admin/raters/{user_id}")


@router.post("/raters/{user_id}/reset", dependencies=[CsrfDep])
def reset(request: Request, session: SessionDep, admin: AdminDep, user_id: PageId) -> Response:
    """A new one-time link to set a password; the old password stops working now."""
    user, token = reset_link(session, user_id=user_id, actor_id=admin.id)
    stats = compute_quality(session, campaign_id=None).raters.get(user.id)
    return _rater_page(
        request, session, admin, user, stats=stats, errors={}, link=_link(request, token)
    )

"""Campaigns: list, create, edit (every field checked on the server; a bad one saves nothing)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import FormData

from app.db import SessionDep
from app.errors import AppError
from app.models import Campaign, User
from app.models.campaigns import CAMPAIGN_STATUSES
from app.services.campaigns import (
    campaign_progress,
    create_campaign,
    get_campaign,
    update_campaign,
)
from app.web.admin.common import field_errors, paged, see_other, show
from app.web.auth import AdminDep, CsrfDep, PageId
from app.web.forms import text
from app.web.pages import FormDep
from app.web.views import FLAG_LABELS

router = APIRouter()


def campaign_values(form: FormData) -> dict[str, Any]:
    """The form as CampaignIn's fields: text stays text so the model names each bad field."""
    lease = text(form, "lease_minutes").strip()
    return {
        "name": text(form, "name"),
        "guidelines_md": text(form, "guidelines_md").replace("\r\n", "\n"),
        "overlap": text(form, "overlap").strip() or "3",
        "gold_rate": text(form, "gold_rate").strip() or "0",
        "priority": text(form, "priority").strip() or "0",
        "flags": [f for f in form.getlist("flags") if isinstance(f, str)],
        "rubric": [a.strip() for a in text(form, "rubric").splitlines() if a.strip()],
        "lease_minutes": lease or None,
        "status": text(form, "status") or "active",
    }


def _form(request: Request, admin: User, campaign: Campaign | None, values: dict[str, Any],
          errors: dict[str, str], progress: list[int] | None = None) -> Response:  # fmt: skip
    title = campaign.name if campaign else "New campaign"
    return show(request, "admin/campaign.html", admin, title, campaign=campaign, values=values,
                errors=errors, statuses=CAMPAIGN_STATUSES, flag_labels=FLAG_LABELS,
                progress=progress)  # fmt: skip


def _values_of(c: Campaign) -> dict[str, Any]:
    return {"name": c.name, "guidelines_md": c.guidelines_md, "overlap": c.overlap,
            "gold_rate": c.gold_rate, "priority": c.priority, "flags": c.flags,
            "rubric": c.rubric, "lease_minutes": c.lease_minutes, "status": c.status}  # fmt: skip


@router.get("/campaigns")
def campaigns(request: Request, session: SessionDep, admin: AdminDep, page: int = 1) -> Response:
    """Every campaign, paged."""
    rows = paged(session, select(Campaign).order_by(Campaign.id.desc()), page=page,
                 base="/admin/campaigns")  # fmt: skip
    return show(request, "admin/campaigns.html", admin, "Campaigns", p=rows)


@router.get("/campaigns/new")
def new(request: Request, admin: AdminDep) -> Response:
    """An empty campaign form."""
    return _form(request, admin, None, {"overlap": 3, "gold_rate": 0, "priority": 0,
                                        "flags": [], "rubric": [], "status": "active"}, {})  # fmt: skip


@router.post("/campaigns", dependencies=[CsrfDep])
def create(request: Request, session: SessionDep, admin: AdminDep, form: FormDep) -> Response:
    """Create the campaign, or show the form again with a message beside each bad field."""
    values = campaign_values(form)
    try:
        campaign = create_campaign(session, actor_id=admin.id, **values)
    except AppError as exc:
        return _form(request, admin, None, values, field_errors(exc))
    return see_other(f"/admin/campaigns/{campaign.id}?saved=1")


@router.get("/campaigns/{campaign_id}")
def edit_page(request: Request, session: SessionDep, admin: AdminDep, campaign_id: PageId) -> Response:
    """A campaign's form and its progress."""
    c = get_campaign(session, campaign_id=campaign_id)
    progress = campaign_progress(session, campaign_id=c.id, overlap=c.overlap)
    return _form(request, admin, c, _values_of(c), {}, progress)


@router.post("/campaigns/{campaign_id}", dependencies=[CsrfDep])
def edit(request: Request, session: SessionDep, admin: AdminDep, form: FormDep,
         campaign_id: PageId) -> Response:  # fmt: skip
    """Save every field, or none."""
    values = campaign_values(form)
    try:
        update_campaign(session, campaign_id=campaign_id, actor_id=admin.id, **values)
    except AppError as exc:
        c = get_campaign(session, campaign_id=campaign_id)
        return _form(request, admin, c, values, field_errors(exc))
    return see_other(f"/admin/campaigns/{campaign_id}?saved=1")

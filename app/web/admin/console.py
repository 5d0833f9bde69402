"""The console's front page: campaigns with their progress, and what needs attention."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.db import SessionDep
from app.models import Campaign
from app.services.campaigns import campaign_progress
from app.services.safety import pending_count
from app.web.admin.common import show
from app.web.auth import AdminDep

router = APIRouter()


@router.get("")
def console(request: Request, session: SessionDep, admin: AdminDep) -> Response:
    """Campaigns, their progress (comparisons with 0..overlap judgments), pending safety flags."""
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(20)))
    progress = {c.id: campaign_progress(session, campaign_id=c.id, overlap=c.overlap)
                for c in campaigns}  # fmt: skip
    return show(request, "admin/console.html", admin, "Admin", campaigns=campaigns,
                progress=progress, pending=pending_count(session))  # fmt: skip

"""The audit log: who did what, when, to what; filtered and paged on the server."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.db import SessionDep
from app.models import AuditEvent, User
from app.web.admin.common import paged, show
from app.web.auth import AdminDep

router = APIRouter()


@router.get("/audit")
def audit(
    request: Request,
    session: SessionDep,
    admin: AdminDep,
    action: str = "",
    actor: str = "",
    target_type: str = "",
    target_id: str = "",
    page: int = 1,
) -> Response:
    """Events newest first; filter by action (prefix), actor email, target type and id."""
    who = aliased(User)
    stmt = (
        select(AuditEvent, who.email)
        .outerjoin(who, who.id == AuditEvent.actor_id)
        .order_by(AuditEvent.id.desc())
    )
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action[:100], autoescape=True))
    if actor:
        stmt = stmt.where(who.email == actor.strip().lower()[:320])
    if target_type:
        stmt = stmt.where(AuditEvent.target_type == target_type[:50])
    if target_id:
        stmt = stmt.where(AuditEvent.target_id == target_id[:100])
    filters = {"action": action, "actor": actor, "target_type": target_type, "target_id": target_id}
    rows = paged(session, stmt, page=page, base="/admin/audit", params=filters, scalars=False)
    return show(request, "admin/audit.html", admin, "Audit log", p=rows, filters=filters)

"""Safety review: flagged-unsafe responses with every rater's flags; a lead confirms or dismisses."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.db import SessionDep
from app.errors import AppError
from app.models import User
from app.services.safety import STATUSES, flagged_responses, review_response
from app.web.admin.common import PER_PAGE, field_errors, see_other, show
from app.web.auth import AdminDep, CsrfDep
from app.web.forms import text
from app.web.pages import FormDep

router = APIRouter()


def _page(request: Request, session: SessionDep, admin: User, status: str, page: int,
          errors: dict[int, dict[str, str]]) -> Response:  # fmt: skip
    flagged = flagged_responses(session, status=status)
    pages = max(1, -(-len(flagged) // PER_PAGE))
    page = min(max(page, 1), pages)
    rows = flagged[(page - 1) * PER_PAGE : page * PER_PAGE]
    return show(request, "admin/safety.html", admin, "Safety review", rows=rows, status=status,
                statuses=STATUSES, page=page, pages=pages, total=len(flagged),
                errors=errors)  # fmt: skip


@router.get("/safety")
def safety(request: Request, session: SessionDep, admin: AdminDep, status: str = "pending",
           page: int = 1) -> Response:  # fmt: skip
    """Responses raters flagged unsafe (pending review by default), most-flagged first."""
    return _page(request, session, admin, status, page, {})


@router.post("/safety/{response_id}", dependencies=[CsrfDep])
def review(request: Request, session: SessionDep, admin: AdminDep, form: FormDep,
           response_id: int) -> Response:  # fmt: skip
    """Confirm or dismiss with a note (audited); confirmed responses are marked in the export."""
    try:
        review_response(session, response_id=response_id, verdict=text(form, "verdict"),
                        note=text(form, "note"), reviewer=admin)  # fmt: skip
    except AppError as exc:
        return _page(request, session, admin, "pending", 1, {response_id: field_errors(exc)})
    return see_other(f"/admin/safety?status={text(form, 'back') or 'pending'}")

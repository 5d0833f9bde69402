"""The rater's own history, and corrections (each a new revision; nothing is overwritten)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.db import SessionDep
from app.models import utcnow
from app.schemas.common import MAX_ID
from app.services.judgments import correct_judgment, get_live_judgment, live_judgments
from app.services.skips import own_skips, undo_skip
from app.web.auth import CsrfDep, PageId, RaterDep
from app.web.forms import judgment_input
from app.web.pages import FormDep
from app.web.templating import is_htmx, render
from app.web.views import correct_context, history_rows

router = APIRouter()
AssignmentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/history")
def history(
    request: Request,
    session: SessionDep,
    rater: RaterDep,
    corrected: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    """The rater's live judgments, newest first; only their own."""
    rows = history_rows(
        live_judgments(session, rater=rater), own_skips(session, rater=rater), now=utcnow()
    )
    return render(
        request,
        "history.html",
        {"user": rater, "title": "History", "rows": rows, "corrected": corrected},
    )


@router.post("/history/skips/{assignment_id}/undo", dependencies=[CsrfDep])
def undo(request: Request, session: SessionDep, rater: RaterDep, assignment_id: AssignmentId) -> Response:
    """Take a skipped comparison back while its lease holds; it is the next one to rate."""
    undo_skip(session, rater=rater, assignment_id=assignment_id)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/rate"})
    return RedirectResponse("/rate", status_code=303)


@router.get("/history/{judgment_id}/correct")
def correct_page(
    request: Request, session: SessionDep, rater: RaterDep, judgment_id: PageId
) -> Response:
    """The rating form, filled in as the judgment was, to record a correction."""
    judgment = get_live_judgment(session, rater=rater, judgment_id=judgment_id)
    return render(
        request, "rate/page.html", correct_context(session, rater=rater, judgment=judgment)
    )


@router.post("/history/{judgment_id}/correct", dependencies=[CsrfDep])
def correct(
    request: Request, session: SessionDep, rater: RaterDep, form: FormDep, judgment_id: PageId
) -> Response:
    """Record the correction as a new revision, then back to the history."""
    result = correct_judgment(
        session, rater=rater, judgment_id=judgment_id, data=judgment_input(form)
    )
    target = f"/history?corrected={result.judgment.id}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)

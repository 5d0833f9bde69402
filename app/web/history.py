"""The rater's own history, and corrections (each a new revision; nothing is overwritten)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.db import SessionDep
from app.schemas.common import MAX_ID
from app.services.judgments import correct_judgment, get_live_judgment, live_judgments
from app.web.auth import CsrfDep, PageId, RaterDep
from app.web.forms import judgment_input
from app.web.pages import FormDep
from app.web.templating import is_htmx, render
from app.web.views import correct_context, history_rows

router = APIRouter()


@router.get("/history")
def history(
    request: Request,
    session: SessionDep,
    rater: RaterDep,
    corrected: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    """The rater's live judgments, newest first; only their own."""
    rows = history_rows(live_judgments(session, rater=rater))
    return render(
        request,
        "history.html",
        {"user": rater, "title": "History", "rows": rows, "corrected": corrected},
    )


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

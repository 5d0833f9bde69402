"""The rating workspace: next comparison, submit, skip; htmx swaps the workspace block."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app.db import SessionDep, run_in_transaction
from app.errors import ValidationFailed
from app.models import Assignment, User
from app.services.assignment import Continuing, next_assignment, skip_assignment
from app.services.judgments import submit_judgment
from app.web.auth import CookieDep, CsrfDep, PageId, RaterDep, rater_of
from app.web.forms import integer, judgment_input, text
from app.web.pages import FormDep
from app.web.templating import is_htmx, render
from app.web.turn import Turn, judge_and_show_next
from app.web.views import diff_context, rate_context, skip_notice

router = APIRouter()


def _next(
    request: Request,
    session: Session,
    rater: User,
    skipped: Assignment | None = None,
    continuing: Continuing | None = None,
) -> Response:
    """The rater's next comparison: the workspace block for htmx, else back to the page (PRG)."""
    if not is_htmx(request):
        return RedirectResponse("/rate", status_code=303)
    return _workspace(request, session, rater, skipped, continuing)


def _workspace(
    request: Request,
    session: Session,
    rater: User,
    skipped: Assignment | None = None,
    continuing: Continuing | None = None,
) -> Response:
    assignment = next_assignment(session, rater=rater, continuing=continuing)
    context = rate_context(session, rater=rater, assignment=assignment)
    # Commit the claim (and the judgment before it) with the page's one read, before rendering:
    # no row lock is held while the page renders, and the read does not need a second
    # transaction (its own connection checkout, BEGIN and COMMIT).
    session.commit()
    if skipped is not None and not context["done"]:
        context["skipped"] = skip_notice(skipped)
    return render(request, "rate/page.html", context, block="workspace")


def _shown(request: Request, session: Session, turn: Turn) -> Response:
    """After a turn's judgment: the next comparison it claimed, else next_assignment's."""
    if turn.workspace is None or not is_htmx(request):
        return _next(request, session, turn.rater)
    session.commit()  # before rendering, as _workspace does
    return render(request, "rate/page.html", turn.workspace, block="workspace")


# The routes every judgment takes load the rater themselves (rater_of: RaterDep's checks) and
# do all their database work and rendering in one run_in_transaction: on PostgreSQL that runs on
# the event loop, without a thread hop (see there).


@router.get("/rate")
async def rate(request: Request, web: CookieDep) -> Response:
    """The current (or a newly claimed) comparison; a reload shows the same one."""

    def work(session: Session) -> Response:
        return _workspace(request, session, rater_of(session, web))

    return await run_in_transaction(request.app, work)


@router.post("/rate/submit", dependencies=[CsrfDep])
async def submit(request: Request, web: CookieDep, form: FormDep) -> Response:
    """Record the judgment (once, whatever the retries) and show the next comparison."""

    def work(session: Session) -> Response:
        try:
            assignment_id, data = integer(form, "assignment_id") or 0, judgment_input(form)
        except ValidationFailed:
            rater_of(session, web)  # who it is comes before what they sent
            raise
        turn = judge_and_show_next(session, web=web, assignment_id=assignment_id, data=data)
        if turn is not None:
            return _shown(request, session, turn)
        rater = rater_of(session, web)  # who it is, before what they sent is judged
        result = submit_judgment(session, rater=rater, assignment_id=assignment_id, data=data)
        return _next(request, session, rater, continuing=result.continuing)

    return await run_in_transaction(request.app, work)


@router.post("/rate/skip", dependencies=[CsrfDep])
async def skip(request: Request, web: CookieDep, form: FormDep) -> Response:
    """Give the comparison back with a reason and show the next one."""

    def work(session: Session) -> Response:
        rater = rater_of(session, web)
        skipped = skip_assignment(
            session,
            rater=rater,
            assignment_id=integer(form, "assignment_id") or 0,
            reason=text(form, "skip_reason"),
            note=text(form, "skip_note"),
        )
        return _next(request, session, rater, skipped)

    return await run_in_transaction(request.app, work)


@router.get("/rate/diff/{assignment_id}")
def diff(
    request: Request, session: SessionDep, rater: RaterDep, assignment_id: PageId
) -> Response:
    """The word differences of the rater's comparison, swapped into each response (on request)."""
    context = diff_context(session, rater=rater, assignment_id=assignment_id)
    return render(request, "rate/diff.html", context)

"""Admin pages for the loop: queue, schedule and cancel rounds, watch them, list model versions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from app.db import SessionDep
from app.models.rounds import RoundMethod
from app.services.rounds import RoundConfig, cancel_round, get_round, queue_round
from app.services.schedules import create_schedule, set_schedule_active
from app.web.auth import AdminDep, CsrfDep, PageId, require_admin
from app.web.forms import integer, text
from app.web.pages import FormDep
from app.web.rounds_views import models_context, round_context, rounds_context
from app.web.templating import render

# Admin-only on the router, so it runs before anything a route declares (CSRF included): a rater
# gets 403 and a stranger the login whatever route they try, as on the rest of the console.
router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def _config(form: FormData) -> dict[str, str]:
    """The RoundConfig fields the form filled in (it shows the main ones); RoundConfig validates."""
    given = {name: text(form, name).strip() for name in RoundConfig.model_fields}
    return {name: value for name, value in given.items() if value}


@router.get("/rounds")
def rounds(request: Request, session: SessionDep, admin: AdminDep) -> Response:
    """Rounds (status, step, progress, duration, who queued them), the queue form, schedules."""
    return render(request, "admin/rounds.html", rounds_context(session, user=admin))


@router.post("/rounds", dependencies=[CsrfDep])
def queue(session: SessionDep, admin: AdminDep, form: FormDep) -> RedirectResponse:
    """Queue a round now; go to its page."""
    queued = queue_round(
        session, campaign_id=integer(form, "campaign_id"), method=text(form, "method") or RoundMethod.RLOO,
        config=_config(form), actor_id=admin.id,
    )  # fmt: skip
    return RedirectResponse(f"/admin/rounds/{queued.id}", status_code=303)


@router.get("/rounds/{round_id}")
def round_page(request: Request, session: SessionDep, admin: AdminDep, round_id: PageId) -> Response:
    """A round: step timeline, log tails, charts, model versions, reward-hacking watch."""
    context = round_context(
        session, user=admin, training_round=get_round(session, round_id=round_id)
    )
    return render(request, "admin/round.html", context, block="live")


@router.post("/rounds/{round_id}/cancel", dependencies=[CsrfDep])
def cancel(session: SessionDep, admin: AdminDep, round_id: PageId) -> RedirectResponse:
    """Cancel: a queued round at once, a running one at its next step boundary."""
    cancel_round(session, round_id=round_id, actor_id=admin.id)
    return RedirectResponse(f"/admin/rounds/{round_id}", status_code=303)


@router.post("/schedules", dependencies=[CsrfDep])
def schedule(session: SessionDep, admin: AdminDep, form: FormDep) -> RedirectResponse:
    """Create a schedule: a cron expression, or every N new judgments."""
    every = integer(form, "every_n_judgments", required=False)
    create_schedule(
        session, campaign_id=integer(form, "campaign_id") or 0, cron=text(form, "cron") or None,
        every_n_judgments=every, method=text(form, "method") or RoundMethod.RLOO, config=_config(form),
        actor_id=admin.id,
    )  # fmt: skip
    return RedirectResponse("/admin/rounds#schedules", status_code=303)


@router.post("/schedules/{schedule_id}/active", dependencies=[CsrfDep])
def pause_or_resume(
    session: SessionDep, admin: AdminDep, form: FormDep, schedule_id: PageId
) -> RedirectResponse:
    """Pause (active=0) or resume (active=1) a schedule."""
    active = text(form, "active") == "1"
    set_schedule_active(session, schedule_id=schedule_id, active=active, actor_id=admin.id)
    return RedirectResponse("/admin/rounds#schedules", status_code=303)


@router.get("/models")
def models(request: Request, session: SessionDep, admin: AdminDep) -> Response:
    """Model versions with lineage (parent), round and metrics."""
    return render(request, "admin/models.html", models_context(session, user=admin))

"""Login, logout, the front door and the guidelines page."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from app.db import SessionDep, run_in_transaction
from app.errors import NotFound
from app.models import Campaign, User
from app.services.auth import authenticate
from app.services.users import end_sessions
from app.web.auth import (
    CsrfDep,
    CurrentUser,
    PageId,
    RaterDep,
    WebSession,
    anonymous_session,
    logged_in_session,
    write_session,
)
from app.web.forms import text
from app.web.templating import render

router = APIRouter()


async def read_form(request: Request) -> FormData:
    """The request's form (parsed once; sync routes then run off the event loop)."""
    return await request.form()


FormDep = Annotated[FormData, Depends(read_form)]


def safe_next(target: str) -> str:
    """A local path to go to after login; anything else (another site) becomes /rate."""
    ok = target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target
    return target if ok else "/rate"


def landing(user: User) -> str:
    """Where a user starts: admins on the console, raters on their queue."""
    return "/admin" if user.is_admin else "/rate"


@router.get("/")
def home(user: CurrentUser) -> RedirectResponse:
    """Admins go to the console, raters to their queue; everyone else to the login."""
    return RedirectResponse(landing(user) if user else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, user: CurrentUser, next: str = "") -> Response:
    """The login form (a logged-in user goes straight on)."""
    if user is not None:
        return RedirectResponse(safe_next(next) if next else landing(user), status_code=303)
    web: WebSession = request.state.web_session
    response = render(
        request,
        "login.html",
        {
            "user": None,
            "title": "Log in",
            "error": "",
            "email": "",
            "next": safe_next(next) if next else "",
        },
    )
    if web.fresh:
        write_session(request, response, web)
    return response


def client_address(request: Request) -> str:
    """The caller's address (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client else "unknown"


@router.post("/login", dependencies=[CsrfDep])
async def login(request: Request, form: FormDep) -> Response:
    """Check the password; a failure counts towards a backoff (429), never an account lock."""
    email = text(form, "email")
    outcome = await authenticate(
        partial(run_in_transaction, request.app),
        email=email,
        password=text(form, "password"),
        address=client_address(request),
    )
    # No `next`: the user's landing page, known only once we know who logged in.
    target = safe_next(text(form, "next")) if text(form, "next") else ""
    if outcome.user is None:
        context = {
            "user": None,
            "title": "Log in",
            "error": outcome.message,
            "email": email[:320],
            "next": target,
        }
        if outcome.retry_after:
            headers = {"Retry-After": str(outcome.retry_after)}
            return render(request, "login.html", context, status_code=429, headers=headers)
        return render(request, "login.html", context, status_code=401)
    response = RedirectResponse(target or landing(outcome.user), status_code=303)
    write_session(request, response, logged_in_session(outcome.user))
    return response


@router.post("/logout", dependencies=[CsrfDep])
def logout(request: Request, session: SessionDep, user: CurrentUser) -> RedirectResponse:
    """End the session server-side (every copy of the cookie), and set an anonymous one."""
    if user is not None:
        end_sessions(session, user_id=user.id, actor_id=user.id)
    response = RedirectResponse("/login", status_code=303)
    write_session(request, response, anonymous_session())
    return response


@router.get("/guidelines/{campaign_id}", response_class=HTMLResponse)
def guidelines(
    request: Request, session: SessionDep, rater: RaterDep, campaign_id: PageId
) -> Response:
    """A campaign's guidelines on their own page."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status == "draft":
        raise NotFound("no such campaign")
    return render(
        request, "guidelines.html", {"user": rater, "title": "Guidelines", "campaign": campaign}
    )

"""The one-time link to set a password (an invite or a reset): public, CSRF-protected, used once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.db import SessionDep
from app.errors import ValidationFailed
from app.services.users import accept_invite, invite_for
from app.web.auth import CsrfDep, WebSession, write_session
from app.web.forms import text
from app.web.pages import FormDep
from app.web.templating import render

router = APIRouter()
MAX_TOKEN = 100


@router.get("/invite/{token}")
def invite_page(request: Request, session: SessionDep, token: str) -> Response:
    """The set-password form, if the link is still good."""
    invite = invite_for(session, token=token[:MAX_TOKEN])
    web: WebSession = getattr(request.state, "web_session", None) or _anonymous(request)
    response = render(request, "invite.html", {"user": None, "title": "Set your password",
                                               "email": _email(session, invite.user_id),
                                               "error": ""})  # fmt: skip
    if web.fresh:
        write_session(request, response, web)
    return response


@router.post("/invite/{token}", dependencies=[CsrfDep])
def accept(request: Request, session: SessionDep, form: FormDep, token: str) -> Response:
    """Set the password; the link stops working; on to the login."""
    password = text(form, "password")
    try:
        if password != text(form, "confirm"):
            raise ValidationFailed("the two passwords differ", field="confirm")
        accept_invite(session, token=token[:MAX_TOKEN], password=password)
    except ValidationFailed as exc:
        invite = invite_for(session, token=token[:MAX_TOKEN])
        return render(request, "invite.html", {"user": None, "title": "Set your password",
                                                "email": _email(session, invite.user_id),
                                                "error": exc.message}, status_code=422)  # fmt: skip
    return RedirectResponse("/login?set=1", status_code=303)


def _email(session: SessionDep, user_id: int) -> str:
    from app.models import User

    return session.get_one(User, user_id).email


def _anonymous(request: Request) -> WebSession:
    from app.web.auth import read_session

    web = read_session(request)
    request.state.web_session = web
    return web

"""HTML pages: login, the rating workspace, history, guidelines, invites and the admin console."""

from fastapi import APIRouter

from app.web import admin, admin_rounds, history, invite, pages, rate

# Included into the app one by one, not under a parent router: FastAPI walks its tree of included
# routers on every request, and the rating routes, which every judgment takes, come first.
routers: list[APIRouter] = [
    rate.router,
    pages.router,
    history.router,
    invite.router,
    admin.router,
    admin_rounds.router,
]

__all__ = ["routers"]

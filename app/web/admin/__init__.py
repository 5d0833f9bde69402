"""The admin console under /admin: every route behind one admin-only dependency.

The dependency sits on the router, so it runs before anything else a route declares (CSRF
included): a rater gets 403 and an anonymous visitor the login, whatever route they try.
"""

from fastapi import APIRouter, Depends

from app.web.admin import audit, campaigns, console, data, quality, raters, safety, tokens
from app.web.auth import require_admin

PREFIX = "/admin"
router = APIRouter(dependencies=[Depends(require_admin)])
for module in (console, raters, campaigns, data, tokens, quality, safety, audit):
    router.include_router(module.router, prefix=PREFIX)

__all__ = ["router"]

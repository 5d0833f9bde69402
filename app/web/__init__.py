"""HTML pages: login, the rating workspace, history, guidelines, invites and the admin console."""

from fastapi import APIRouter

from app.web import admin, admin_rounds, history, invite, pages, rate

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(rate.router)
router.include_router(history.router)
router.include_router(invite.router)
router.include_router(admin.router)
router.include_router(admin_rounds.router)

__all__ = ["router"]

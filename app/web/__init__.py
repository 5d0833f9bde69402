"""HTML pages: login, the rating workspace, history and guidelines."""

from fastapi import APIRouter

from app.web import admin_rounds, history, pages, rate

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(rate.router)
router.include_router(history.router)
router.include_router(admin_rounds.router)

__all__ = ["router"]

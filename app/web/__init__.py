"""HTML pages: login, the rating workspace, history and guidelines."""

from fastapi import APIRouter

from app.web import history, pages, rate

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(rate.router)
router.include_router(history.router)

__all__ = ["router"]

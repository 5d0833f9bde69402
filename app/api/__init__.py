"""JSON routes under /api/v1, authorised by bearer tokens only."""

from fastapi import APIRouter

from app.api import export, resources, writes

router = APIRouter(prefix="/api/v1")
router.include_router(resources.router)
router.include_router(writes.router)
router.include_router(export.router)

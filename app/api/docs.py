"""/docs: Swagger UI over /openapi.json, served from static/vendor (never from a CDN)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER = "/static/vendor/swagger-ui"
router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs() -> HTMLResponse:
    """The interactive API documentation."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="prefloop API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle-5.35.0.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui-5.35.0.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
    )

"""/docs: Swagger UI over /openapi.json, served from static/vendor (never from a CDN), no inline script."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

SWAGGER = "/static/vendor/swagger-ui"
router = APIRouter(include_in_schema=False)

# FastAPI's get_swagger_ui_html starts Swagger UI with an inline script, which our CSP refuses;
# this page loads the same bundle and starts it from static/js/swagger-init.js.
_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>prefloop API</title>
<link rel="stylesheet" href="{SWAGGER}/swagger-ui-5.35.0.css">
<link rel="icon" href="{SWAGGER}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER}/swagger-ui-bundle-5.35.0.js"></script>
<script src="/static/js/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/docs")
def docs() -> HTMLResponse:
    """The interactive API documentation."""
    return HTMLResponse(_PAGE)

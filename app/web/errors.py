"""AppErrors as HTML: a message in the page's #flash for htmx, a page otherwise, login for 401."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app.errors import AppError, Unauthorized
from app.web.templating import is_htmx, render


def wants_html(request: Request) -> bool:
    """True for browser page and htmx requests (the API always gets JSON)."""
    if request.url.path.startswith("/api"):
        return False
    return is_htmx(request) or "text/html" in request.headers.get("accept", "")


def html_error(request: Request, exc: AppError) -> Response:
    """The error as the page (or fragment) a person reads; nothing was changed."""
    if isinstance(exc, Unauthorized):
        target = "/login?next=" + request.url.path if request.method == "GET" else "/login"
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": "/login"})
        return RedirectResponse(target, status_code=303)
    context = {"user": None, "title": "Error", "error": exc}
    if is_htmx(request):
        # Only the message area changes: the rater's selections stay as they were.
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML", **exc.headers}
        return render(
            request,
            "error.html",
            context,
            block="message",
            status_code=exc.status_code,
            headers=headers,
        )
    return render(request, "error.html", context, status_code=exc.status_code, headers=exc.headers)

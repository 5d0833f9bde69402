"""ASGI middleware: security headers on every response, and request body size limits.

Pure ASGI (not BaseHTTPMiddleware) so streamed exports pass through untouched.
"""

from __future__ import annotations

import json

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings
from app.errors import AppError

# Scripts only from our own origin: even if a sanitiser bug let markup through, no inline script
# or handler would run. htmx is configured (base.html) to need neither eval nor inline styles.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI (React) sets style attributes; its scripts are still only our own files.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
UPLOAD_PREFIXES = ("/api/", "/admin")  # JSON bodies and admin imports; rater forms are small


def security_headers(path: str, *, https: bool) -> dict[str, str]:
    """The headers a response to `path` carries (a route may set its own first)."""
    headers = dict(ALWAYS)
    if not path.startswith("/static/"):
        # Everything but our own static files carries data: prompts, judgments, exports.
        headers["Cache-Control"] = "no-store"
        headers["Content-Security-Policy"] = DOCS_CSP if path == "/docs" else PAGE_CSP
    max_age = get_settings().hsts_seconds
    if https and max_age:
        headers["Strict-Transport-Security"] = f"max-age={max_age}; includeSubDomains"
    return headers


class SecurityHeaders:
    """Add the security headers to every HTTP response: pages, API, redirects, errors, static."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(scope["path"], https=scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PayloadTooLarge(AppError):
    """The request body is larger than this route accepts."""

    status_code = 413
    code = "too_large"


def body_limit(path: str) -> int:
    """The largest body a request to `path` may send."""
    settings = get_settings()
    return (
        settings.max_upload_bytes if path.startswith(UPLOAD_PREFIXES) else settings.max_form_bytes
    )


class BodyLimit:
    """Refuse bodies over the limit: at once from Content-Length, else while they stream in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            error = PayloadTooLarge(f"the request body is larger than {limit:,} bytes")
            await _send_error(send, error)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # a chunked body without Content-Length: refused as it grows
                raise PayloadTooLarge(f"the request body is larger than {limit:,} bytes")
            return message

        await self.app(scope, counted, send)


async def _send_error(send: Send, error: AppError) -> None:
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Typed errors with codes; one handler turns them into JSON (API) or an HTML fragment (pages)."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure the user can act on: a code, a message, and the field at fault if any."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (Retry-After on 429 and 503)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: code, message, field."""
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationFailed(AppError):
    """Input that breaks a rule; nothing was changed."""

    status_code = 422
    code = "invalid"


class NotFound(AppError):
    """The thing does not exist, or the caller may not know it does."""

    status_code = 404
    code = "not_found"


class Conflict(AppError):
    """The request collides with the current state (a duplicate, a stale lease)."""

    status_code = 409
    code = "conflict"


class Forbidden(AppError):
    """The caller is known but may not do this."""

    status_code = 403
    code = "forbidden"


class Unauthorized(AppError):
    """The caller is not known: log in, or send a valid token."""

    status_code = 401
    code = "unauthorized"


class _RetryLater(AppError):
    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(_RetryLater):
    """The caller must wait (login backoff)."""

    status_code = 429
    code = "too_many_requests"


class Unavailable(_RetryLater):
    """A dependency is down (the database restarting); nothing was changed, try again soon."""

    status_code = 503
    code = "unavailable"

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

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: code, message, field."""
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationFailed(AppError):
    """Input that breaks a rule; nothing was changed."""

    status_code = 422
    code = "invalid"


class FieldErrors(ValidationFailed):
    """A form with one or more invalid fields: a message for each; nothing was saved."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        field, message = next(iter(errors.items()))
        super().__init__(f"{field.replace('_', ' ')}: {message}", field=field)


class ImportRejected(ValidationFailed):
    """An import file with bad lines: every one is listed (line number, reason); nothing written."""

    code = "import_rejected"

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        first = "; ".join(f"line {n}: {why}" for n, why in problems[:5])
        more = f"; and {len(problems) - 5} more bad lines" if len(problems) > 5 else ""
        noun = "bad line" if len(problems) == 1 else "bad lines"
        super().__init__(
            f"{len(problems)} {noun}, nothing imported: {first}{more}",
            field=f"line {problems[0][0]}",
        )


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

"""Form parsing for the rating pages: strings in, typed values out, a clear error otherwise."""

from __future__ import annotations

import re

from starlette.datastructures import FormData

from app.errors import ValidationFailed
from app.services.judgments import JudgmentInput

_INDEXED = re.compile(r"^(rank|flag|read)-(\d{1,2})$")
MAX_TIME_MS = 24 * 3600 * 1000


def text(form: FormData, name: str) -> str:
    """A text field ('' when absent; a file upload is not text)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def integer(form: FormData, name: str, *, required: bool = True) -> int | None:
    """An integer field, or a ValidationFailed naming it."""
    raw = text(form, name).strip()
    if not raw:
        if required:
            raise ValidationFailed(f"{name.replace('_', ' ')} is missing", field=name)
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name.replace('_', ' ')} must be a whole number", field=name
        ) from None


def judgment_input(form: FormData) -> JudgmentInput:
    """The judgment fields of a rating form (rank-N, flag-N keyed by display index)."""
    ranks: dict[int, int] = {}
    flags: dict[int, list[str]] = {}
    read: dict[int, bool] = {}
    for key in set(form.keys()):
        match = _INDEXED.match(key)
        if match is None:
            continue
        kind, index = match.group(1), int(match.group(2))
        if kind == "rank":
            value = integer(form, key, required=False)
            if value is not None:
                ranks[index] = value
        elif kind == "read":
            state = text(form, key)
            if state in ("0", "1"):  # empty: the page's script did not report it
                read[index] = state == "1"
        else:
            flags[index] = [v for v in form.getlist(key) if isinstance(v, str)]
    elapsed = integer(form, "time_spent_ms", required=False)
    return JudgmentInput(
        idempotency_key=text(form, "idempotency_key"),
        scale=integer(form, "scale", required=False),
        ranks=ranks,
        not_rankable=text(form, "not_rankable") in ("1", "on", "true"),
        not_rankable_reason=text(form, "not_rankable_reason"),
        flags=flags,
        rationale=text(form, "rationale").replace("\r\n", "\n"),
        time_spent_ms=None if elapsed is None else min(max(elapsed, 0), MAX_TIME_MS),
        read_to_end=read,
    )

"""What the rating templates show: built from rows, never holding a model name or response id."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Assignment, Campaign, Comparison, Judgment, Prompt, Response, User
from app.models.rating import MAX_SKIP_NOTE, SKIP_REASONS, SkipReason
from app.rendering import diff_offered, diff_views, render_markdown
from app.services.assignment import progress
from app.services.judgments import letter
from app.services.skips import can_undo
from trainer.schema import STRENGTH_LEVELS

FLAG_LABELS = {
    "unsafe": "Unsafe recommendation",
    "factually_wrong": "Factually wrong",
    "incomplete": "Incomplete",
    "off_topic": "Off topic",
}
# Flag shortcuts: the key, then the response's letter (a key alone would not say which response).
FLAG_KEYS = {"unsafe": "u", "factually_wrong": "w", "incomplete": "i", "off_topic": "o"}
SCALE = [
    (-3, "A much better"),
    (-2, "A better"),
    (-1, "A slightly better"),
    (0, "Tie"),
    (1, "B slightly better"),
    (2, "B better"),
    (3, "B much better"),
]


@dataclass(frozen=True)
class ResponseView:
    """One response as a rater sees it: a letter, sanitised HTML, and the marked-up diff view."""

    index: int
    letter: str
    html: Markup
    diff: Markup | None


@dataclass(frozen=True)
class Prefill:
    """Earlier answers to show in the form (a correction starts from the live judgment)."""

    scale: int | None = None
    ranks: dict[int, int] | None = None  # display index -> 1-based rank
    flags: dict[int, list[str]] | None = None
    rationale: str = ""
    not_rankable: bool = False
    not_rankable_reason: str = ""


def _responses(session: Session, shown: list[int]) -> list[ResponseView]:
    rows = session.execute(select(Response.id, Response.text).where(Response.id.in_(shown)))
    texts = {rid: text for rid, text in rows}
    htmls = [render_markdown(texts[rid]) for rid in shown]
    diffs = diff_views(htmls)
    return [ResponseView(i, letter(i), html, diffs[i]) for i, html in enumerate(htmls)]


def prefill_from(judgment: Judgment) -> Prefill:
    """The form state that reproduces `judgment`."""
    shown = judgment.shown_order
    scale = None
    ranks = None
    if judgment.ranks is not None:
        ranks = {i: r + 1 for i, r in enumerate(judgment.ranks)}
        if len(shown) == 2:
            a, b = judgment.ranks
            sign = 0 if a == b else (-1 if a < b else 1)
            scale = sign * (judgment.strength if judgment.strength is not None else 2)
    flags = {shown.index(int(rid)): list(f) for rid, f in judgment.flags.items()}
    return Prefill(
        scale,
        ranks,
        flags,
        judgment.rationale,
        judgment.not_rankable,
        judgment.not_rankable_reason or "",
    )


def comparison_context(
    session: Session, *, comparison: Comparison, shown: list[int], prefill: Prefill | None = None
) -> dict[str, Any]:
    """The prompt, its context, the guidelines, the responses in `shown` order, and a fresh key."""
    campaign = session.get_one(Campaign, comparison.campaign_id)
    prompt = session.get_one(Prompt, comparison.prompt_id)
    flags = [(code, FLAG_LABELS.get(code, code), FLAG_KEYS.get(code, "")) for code in campaign.flags]
    responses = _responses(session, shown)
    return {
        "campaign": campaign,
        "prompt_text": prompt.text,
        "prompt_context": sorted(prompt.context.items()),
        "responses": responses,
        "diff_offered": diff_offered([r.html for r in responses]),
        "k": len(shown),
        "flags": flags,
        "scale": SCALE,
        "skip_reasons": SKIP_REASONS,
        "max_skip_note": MAX_SKIP_NOTE,
        "skipped": None,
        "idempotency_key": secrets.token_urlsafe(18),
        "prefill": prefill or Prefill(),
    }


def rate_context(session: Session, *, rater: User, assignment: Assignment | None) -> dict[str, Any]:
    """The rating workspace for the rater's current assignment, or the 'all done' state."""
    base: dict[str, Any] = {"user": rater, "title": "Rate", "mode": "rate"}
    if assignment is None:
        return {**base, "done": True, "progress": None}
    comparison = session.get_one(Comparison, assignment.comparison_id)
    return {
        **base,
        "done": False,
        "action": "/rate/submit",
        "assignment_id": assignment.id,
        "progress": progress(session, rater=rater, campaign_id=comparison.campaign_id),
        **comparison_context(session, comparison=comparison, shown=assignment.display_order),
    }


def correct_context(session: Session, *, rater: User, judgment: Judgment) -> dict[str, Any]:
    """The rating form for correcting `judgment`, filled in as it was."""
    comparison = session.get_one(Comparison, judgment.comparison_id)
    return {
        "user": rater,
        "title": "Correct a judgment",
        "mode": "correct",
        "done": False,
        "action": f"/history/{judgment.id}/correct",
        "assignment_id": None,
        "progress": None,
        "judgment": judgment,
        **comparison_context(
            session,
            comparison=comparison,
            shown=judgment.shown_order,
            prefill=prefill_from(judgment),
        ),
    }


def verdict(judgment: Judgment) -> str:
    """A one-line summary: 'B > A (better)', 'A = C > B', or 'none acceptable'."""
    if judgment.not_rankable or judgment.ranks is None:
        return "None acceptable"
    by_rank: dict[int, list[str]] = {}
    for i, r in enumerate(judgment.ranks):
        by_rank.setdefault(r, []).append(letter(i))
    line = " > ".join(" = ".join(group) for _, group in sorted(by_rank.items()))
    if judgment.strength is not None and len(judgment.ranks) == 2 and judgment.strength > 0:
        line += f" ({STRENGTH_LEVELS[judgment.strength]})"
    return line


def skip_notice(assignment: Assignment) -> dict[str, str]:
    """What the next workspace says about the comparison just skipped."""
    return {"label": SKIP_REASONS.get(SkipReason(assignment.skip_reason or "other"), "")}


def _snippet(text: str) -> str:
    return text[:140] + ("…" if len(text) > 140 else "")


def history_rows(
    judgments: list[Judgment], skips: list[Assignment], *, now: datetime
) -> list[dict[str, Any]]:
    """Rows of the history table, newest first: judgments (verdict, flags, revision) and skips
    (reason, note, and whether the skip can still be undone)."""
    rows = []
    for j in judgments:
        flagged = sorted({f for fl in j.flags.values() for f in fl})
        rows.append(
            {
                "kind": "judgment",
                "id": j.id,
                "at": j.created_at,
                "prompt": _snippet(j.comparison.prompt.text),
                "verdict": verdict(j),
                "flags": [FLAG_LABELS.get(f, f) for f in flagged],
                "revision": j.revision,
                "late": j.lease_expired,
            }
        )
    for a in skips:
        rows.append(
            {
                "kind": "skip",
                "id": a.id,
                "at": a.completed_at or a.created_at,
                "prompt": _snippet(a.comparison.prompt.text),
                "reason": SKIP_REASONS.get(SkipReason(a.skip_reason or "other"), ""),
                "note": a.skip_note or "",
                "undo_until": a.lease_expires_at if can_undo(a, now=now) else None,
            }
        )
    return sorted(rows, key=lambda row: row["at"], reverse=True)

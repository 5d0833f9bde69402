"""What the rating templates show: built from rows, never holding a model name or response id."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import ColumnElement, Select, bindparam, select, update
from sqlalchemy.orm import Session

from app.db import run_core
from app.models import (
    Assignment,
    Campaign,
    Comparison,
    ComparisonItem,
    Judgment,
    Prompt,
    Response,
    User,
    utcnow,
)
from app.models.rating import MAX_SKIP_NOTE, SKIP_REASONS, SkipReason
from app.rendering import diff_offered_cached, diff_views_cached, render_markdown
from app.services.assignment import (
    Progress,
    get_own_assignment,
    progress_columns,
    utc_day,
)
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
    """One response as a rater sees it: a letter and sanitised HTML (the diff comes on request)."""

    index: int
    letter: str
    html: Markup


@dataclass(frozen=True)
class CampaignView:
    """What the rating page shows of its campaign."""

    id: int
    guidelines_md: str
    flags: list[str]


@dataclass(frozen=True)
class Prefill:
    """Earlier answers to show in the form (a correction starts from the live judgment)."""

    scale: int | None = None
    ranks: dict[int, int] | None = None  # display index -> 1-based rank
    flags: dict[int, list[str]] | None = None
    rationale: str = ""
    not_rankable: bool = False
    not_rankable_reason: str = ""


def _html(
    session: Session, model: type[Prompt] | type[Response], row_id: int, text: str, html: str | None
) -> Markup:
    """The stored rendering, or render it now and store it (rows imported before it was kept)."""
    if html is None:
        html = str(render_markdown(text))
        session.execute(update(model).where(model.id == row_id).values(html=html))
    return Markup(html)  # noqa: S704 - sanitised by render_markdown before it was stored


def page_statement(comparison_id: ColumnElement[int], *, with_progress: bool) -> Select[Any]:
    """Campaign, prompt, the shown responses (stored HTML) and maybe the rater's progress counts
    (binds rater_id and today): PAGE_COLUMNS columns, then PROGRESS_COLUMNS.

    Built once per variant with bound parameters: building and keying it per request cost more
    than running it.
    """
    extra: tuple[Any, ...] = ()
    if with_progress:
        extra = progress_columns(
            rater_id=bindparam("rater_id"), campaign_id=Campaign.id, today=bindparam("today")
        )
    # Columns, not the Campaign entity: plain rows skip the ORM's loading on every page.
    return (
        select(
            Campaign.id,
            Campaign.guidelines_md,
            Campaign.flags,
            Prompt.id,
            Prompt.text,
            Prompt.html,
            Prompt.context,
            Response.id,
            Response.text,
            Response.html,
            *extra,
        )
        .join(Comparison, Comparison.campaign_id == Campaign.id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        # The comparison's items are the responses shown (in another order): a join, not an
        # IN list, so the statement's SQL is the same on every page.
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .join(Response, Response.id == ComparisonItem.response_id)
        .where(Comparison.id == comparison_id)
    )


PAGE_COLUMNS = 10
PROGRESS_COLUMNS = 3  # done today, done in the campaign, the campaign's open places
_PAGE = page_statement(bindparam("comparison_id"), with_progress=False)
_PAGE_WITH_PROGRESS = page_statement(bindparam("comparison_id"), with_progress=True)


@dataclass(frozen=True)
class Page:
    """What page_statement read, ready for the templates."""

    campaign: CampaignView
    context: dict[str, Any]  # prompt_html, prompt_context, responses
    progress: Progress | None


def page_from_rows(
    session: Session, rows: Sequence[Sequence[Any]], shown: list[int],
    progress: Callable[[int, int, int], Progress] | None = None,
) -> Page:
    """The page from page_statement's rows; `progress` makes the progress line from its counts."""
    by_id = {row[7]: row for row in rows}
    first = rows[0]
    responses = [
        ResponseView(i, letter(i), _html(session, Response, rid, by_id[rid][8], by_id[rid][9]))
        for i, rid in enumerate(shown)
    ]
    context = {
        "prompt_html": _html(session, Prompt, first[3], first[4], first[5]),
        "prompt_context": sorted(first[6].items()),
        "responses": responses,
    }
    counts = first[PAGE_COLUMNS : PAGE_COLUMNS + PROGRESS_COLUMNS]
    line = progress(*counts) if progress is not None else None
    return Page(CampaignView(first[0], first[1], first[2]), context, line)


def _holding_one(today: int, in_campaign: int, open_places: int) -> Progress:
    # The comparison on the page is the rater's, on top of the campaign's open places.
    return Progress(today, in_campaign, max(open_places, 0) + 1)


def _page_data(
    session: Session, *, comparison_id: int, shown: list[int], progress_of: int | None
) -> Page:
    """Campaign, prompt, responses (stored HTML) and progress counts in one statement."""
    params: dict[str, Any] = {"comparison_id": comparison_id}
    if progress_of is not None:
        params.update(rater_id=progress_of, today=utc_day(utcnow()))
    rows = run_core(session, _PAGE if progress_of is None else _PAGE_WITH_PROGRESS, params).all()
    return page_from_rows(session, rows, shown, None if progress_of is None else _holding_one)


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
    session: Session,
    *,
    comparison_id: int,
    shown: list[int],
    diff_url: str | None,
    prefill: Prefill | None = None,
    progress_of: int | None = None,
) -> dict[str, Any]:
    """The prompt, its context, the guidelines, the responses in `shown` order, progress, and a
    fresh key."""
    page = _page_data(session, comparison_id=comparison_id, shown=shown, progress_of=progress_of)
    return _comparison_context(page, shown=shown, diff_url=diff_url, prefill=prefill)


def _comparison_context(
    page: Page, *, shown: list[int], diff_url: str | None, prefill: Prefill | None = None
) -> dict[str, Any]:
    campaign = page.campaign
    flags = [(code, FLAG_LABELS.get(code, code), FLAG_KEYS.get(code, "")) for code in campaign.flags]
    return {
        "campaign": campaign,
        **page.context,
        "progress": page.progress,
        "diff_offered": diff_offered_cached(tuple(r.html for r in page.context["responses"])),
        "k": len(shown),
        "flags": flags,
        "scale": SCALE,
        "skip_reasons": SKIP_REASONS,
        "max_skip_note": MAX_SKIP_NOTE,
        "skipped": None,
        "idempotency_key": secrets.token_urlsafe(18),
        "prefill": prefill or Prefill(),
        "diff_url": diff_url,
    }


def _rate_page(rater: User) -> dict[str, Any]:
    return {"user": rater, "title": "Rate", "mode": "rate"}


def rate_context(session: Session, *, rater: User, assignment: Assignment | None) -> dict[str, Any]:
    """The rating workspace for the rater's current assignment, or the 'all done' state."""
    if assignment is None:
        return {**_rate_page(rater), "done": True, "progress": None}
    shown = assignment.display_order
    page = _page_data(
        session, comparison_id=assignment.comparison_id, shown=shown, progress_of=rater.id
    )
    return workspace_context(rater=rater, assignment_id=assignment.id, shown=shown, page=page)


def workspace_context(
    *, rater: User, assignment_id: int, shown: list[int], page: Page
) -> dict[str, Any]:
    """The rating workspace for the rater's assignment `assignment_id`, its page read."""
    return {
        **_rate_page(rater),
        "done": False,
        "action": "/rate/submit",
        "assignment_id": assignment_id,
        **_comparison_context(page, shown=shown, diff_url=f"/rate/diff/{assignment_id}"),
    }


def correct_context(session: Session, *, rater: User, judgment: Judgment) -> dict[str, Any]:
    """The rating form for correcting `judgment`, filled in as it was."""
    return {
        "user": rater,
        "title": "Correct a judgment",
        "mode": "correct",
        "done": False,
        "action": f"/history/{judgment.id}/correct",
        "assignment_id": None,
        "judgment": judgment,
        **comparison_context(
            session,
            comparison_id=judgment.comparison_id,
            shown=judgment.shown_order,
            diff_url=f"/rate/diff/{judgment.assignment_id}" if judgment.assignment_id else None,
            prefill=prefill_from(judgment),
        ),
    }


def diff_context(session: Session, *, rater: User, assignment_id: int) -> dict[str, Any]:
    """The word differences of one of the rater's own comparisons, in their display order."""
    assignment = get_own_assignment(session, rater=rater, assignment_id=assignment_id)
    shown = assignment.display_order
    rows = session.execute(
        select(Response.id, Response.text, Response.html).where(Response.id.in_(shown))
    ).all()
    htmls = {rid: _html(session, Response, rid, text, html) for rid, text, html in rows}
    diffs = diff_views_cached(tuple(str(htmls[rid]) for rid in shown))
    return {"diffs": [(letter(i), diff) for i, diff in enumerate(diffs)]}


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

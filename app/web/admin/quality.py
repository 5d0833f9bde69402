"""Data quality per campaign and per rater, and one comparison's judgments side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.db import SessionDep
from app.errors import NotFound
from app.models import Campaign, Comparison, Judgment, Prompt
from app.schemas.common import MAX_ID
from app.services.quality import MIN_KAPPA_OVERLAP, fresh_quality, rater_names
from app.services.safety import reviews_of
from app.web.admin.common import show
from app.web.auth import AdminDep, PageId
from app.web.charts import daily_chart

router = APIRouter()


@router.get("/quality")
def quality(
    request: Request, session: SessionDep, admin: AdminDep,
    campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Alpha, agreement, kappa, gold, position bias, ties, flags, time; most-disagreed comparisons."""
    campaign = session.get(Campaign, campaign_id) if campaign_id else None
    q = fresh_quality(session, campaign_id=campaign.id if campaign else None)
    names = rater_names(
        session, [*q.raters, *(a for a, _, _ in q.kappas), *(b for _, b, _ in q.kappas)]
    )
    chart = daily_chart(
        [(d, n, f.value) for d, n, f in q.per_day],
        title="Judgments per day, agreement with the majority",
    )
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.name)))
    return show(request, "admin/quality.html", admin, "Quality", q=q, names=names, chart=chart,
                campaign=campaign, campaigns=campaigns, min_overlap=MIN_KAPPA_OVERLAP)  # fmt: skip


@router.get("/quality/comparisons/{comparison_id}")
def comparison(
    request: Request, session: SessionDep, admin: AdminDep, comparison_id: PageId
) -> Response:
    """Every live judgment of one comparison side by side, over its responses."""
    c = session.get(Comparison, comparison_id)
    if c is None:
        raise NotFound("no such comparison")
    prompt = session.get_one(Prompt, c.prompt_id)
    judgments = list(session.scalars(
        select(Judgment).where(Judgment.comparison_id == c.id, Judgment.is_live()).order_by(Judgment.id)))  # fmt: skip
    responses = [item.response for item in c.items]
    rows = []
    for j in judgments:
        ranks = dict(zip(j.shown_order, j.ranks or [], strict=False))
        rows.append((j, [ranks.get(r.id) for r in responses],
                     [j.flags.get(str(r.id), []) for r in responses],
                     [j.shown_order.index(r.id) if r.id in j.shown_order else None for r in responses]))  # fmt: skip
    names = rater_names(session, [j.rater_id for j in judgments])
    return show(request, "admin/comparison.html", admin, f"Comparison {c.id}", c=c, prompt=prompt,
                responses=responses, rows=rows, names=names,
                reviews=reviews_of(session, [r.id for r in responses]))  # fmt: skip

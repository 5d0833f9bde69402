"""The late-submit rule: a judgment on an expired lease is kept, marked `late`, and counted.

A physician's judgment is never thrown away for arriving late, so a comparison can end with one
more rater than its overlap. Every export shape says so (`late` per judgment, `n_late` per
comparison), and consensus, agreement and Bradley-Terry scores pool late judgments like the rest.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from app.config import get_settings
from app.models import utcnow
from app.services.assignment import next_assignment
from app.services.judgments import JudgmentInput, submit_judgment
from tests.factories import make_campaign, make_comparisons, make_user
from tests.support import export_rows
from trainer.schema import AggregatedRecord, PairwiseRecord, RankingRecord


def _submit(db: Session, rater, assignment, scale: int, now):  # noqa: ANN001, ANN202
    data = JudgmentInput(idempotency_key=secrets.token_urlsafe(18), scale=scale)
    return submit_judgment(db, rater=rater, assignment_id=assignment.id, data=data, now=now).judgment


def test_a_late_judgment_is_kept_marked_and_counted_everywhere(db: Session) -> None:
    campaign = make_campaign(db, overlap=1)
    make_comparisons(db, campaign)
    slow, quick = make_user(db), make_user(db)
    start = utcnow()
    held = next_assignment(db, rater=slow, now=start)
    after = start + timedelta(minutes=get_settings().lease_minutes + 1)
    taken = next_assignment(db, rater=quick, now=after)  # the lease ran out: the place is free
    assert held is not None and taken is not None
    assert held.comparison_id == taken.comparison_id
    on_time = _submit(db, quick, taken, -2, after)
    # They disagree: each prefers a different response (their display orders may differ).
    same_order = held.display_order == taken.display_order
    late = _submit(db, slow, held, 2 if same_order else -2, after + timedelta(minutes=1))
    assert (on_time.lease_expired, late.lease_expired) == (False, True)

    rankings = [RankingRecord.model_validate(r) for r in export_rows(db, shape="ranking")]
    assert {r.judgment_id: r.late for r in rankings} == {on_time.id: False, late.id: True}
    pairs = [PairwiseRecord.model_validate(r) for r in export_rows(db, shape="pairwise")]
    assert {p.judgment_id: p.late for p in pairs} == {on_time.id: False, late.id: True}
    (pooled,) = [AggregatedRecord.model_validate(r) for r in export_rows(db, shape="aggregated")]
    # Overlap 1, two raters: both count; they disagree, and the agreement figure says so.
    assert (pooled.n_raters, pooled.n_late, pooled.agreement) == (2, 1, 0.0)

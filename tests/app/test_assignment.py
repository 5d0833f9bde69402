"""Next: leases, overlap, order, gold mixing, skips and expiry (PostgreSQL)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Assignment, utcnow
from app.services.assignment import Progress, next_assignment, progress, skip_assignment
from app.services.judgments import JudgmentInput, submit_judgment
from tests.factories import make_campaign, make_comparisons, make_raters, make_user


def _judge(db: Session, rater, assignment, now=None):
    """Judge `assignment`; what the submit hands to the next claim (its campaign)."""
    key = f"test-key-{assignment.id}-{rater.id}"
    result = submit_judgment(db, rater=rater, assignment_id=assignment.id,
                             data=JudgmentInput(idempotency_key=key, scale=0), now=now)
    assert result.continuing is not None
    return result.continuing


def test_next_leases_a_comparison_with_a_recorded_random_order(db: Session) -> None:
    campaign = make_campaign(db)
    [comparison] = make_comparisons(db, campaign, k=4)
    rater = make_user(db)
    assignment = next_assignment(db, rater=rater, rng=random.Random(3))
    assert assignment is not None and assignment.comparison_id == comparison.id
    assert assignment.state == "leased"
    assert sorted(assignment.display_order) == sorted(i.response_id for i in comparison.items)
    assert assignment.lease_expires_at > utcnow() + timedelta(minutes=19)


def test_a_reload_returns_the_same_lease(db: Session) -> None:
    campaign = make_campaign(db)
    make_comparisons(db, campaign, count=3)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None
    assert next_assignment(db, rater=rater) is first


def test_overlap_distinct_raters_then_nothing_left(db: Session) -> None:
    campaign = make_campaign(db, overlap=2)
    [comparison] = make_comparisons(db, campaign)
    raters = [make_user(db) for _ in range(3)]
    for rater in raters[:2]:
        assignment = next_assignment(db, rater=rater)
        assert assignment is not None and assignment.comparison_id == comparison.id
    assert next_assignment(db, rater=raters[2]) is None


def test_a_rater_never_gets_the_same_comparison_twice(db: Session) -> None:
    campaign = make_campaign(db, overlap=3)
    make_comparisons(db, campaign, count=2)
    rater = make_user(db)
    seen = []
    while (assignment := next_assignment(db, rater=rater)) is not None:
        seen.append(assignment.comparison_id)
        _judge(db, rater, assignment)
    assert len(seen) == 2 and len(set(seen)) == 2


def test_expired_leases_return_to_the_pool_and_late_work_is_kept(db: Session) -> None:
    campaign = make_campaign(db, overlap=1)
    [comparison] = make_comparisons(db, campaign)
    slow, quick = make_user(db), make_user(db)
    lease = next_assignment(db, rater=slow)
    assert lease is not None
    assert next_assignment(db, rater=quick) is None
    later = utcnow() + timedelta(minutes=21)
    taken = next_assignment(db, rater=quick, now=later)
    assert taken is not None and taken.comparison_id == comparison.id
    late = submit_judgment(db, rater=slow, assignment_id=lease.id, now=later,
                           data=JudgmentInput(idempotency_key="late-judgment-1", scale=-2))
    assert late.judgment.lease_expired and not late.replayed
    rows = db.scalars(select(Assignment).where(Assignment.comparison_id == comparison.id)).all()
    assert {a.state for a in rows} == {"submitted", "leased"}


def test_a_rater_gets_their_own_expired_lease_back_while_it_is_open(db: Session) -> None:
    campaign = make_campaign(db, overlap=2)
    make_comparisons(db, campaign, count=2)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None
    order = list(first.display_order)
    again = next_assignment(db, rater=rater, now=utcnow() + timedelta(minutes=30))
    assert again is not None and again.id == first.id and again.display_order == order
    assert again.lease_expires_at > utcnow() + timedelta(minutes=30)


def test_priority_then_closest_to_completion(db: Session) -> None:
    low = make_campaign(db, overlap=3, priority=0)
    high = make_campaign(db, overlap=3, priority=5)
    make_comparisons(db, low, count=2)
    a, b = make_comparisons(db, high, count=2)
    first = next_assignment(db, rater=make_user(db))
    assert first is not None and first.comparison.campaign_id == high.id
    # Whichever was taken is now closest to completion: the next rater gets the same one.
    second = next_assignment(db, rater=make_user(db))
    assert second is not None and second.comparison_id == first.comparison_id


def test_gold_is_mixed_in_at_the_campaign_rate(db: Session) -> None:
    campaign = make_campaign(db, overlap=1, gold_rate=0.25)
    make_comparisons(db, campaign, count=40)
    make_comparisons(db, campaign, count=40, gold=True)
    rng = random.Random(11)
    gold = 0
    for rater in make_raters(db, 40):
        assignment = next_assignment(db, rater=rater, rng=rng)
        assert assignment is not None
        gold += assignment.comparison.is_gold
    assert 4 <= gold <= 17  # 25 % of 40 = 10; a fixed seed keeps this deterministic


def test_paused_campaigns_give_nothing(db: Session) -> None:
    campaign = make_campaign(db)
    make_comparisons(db, campaign)
    campaign.status = "paused"
    db.flush()
    assert next_assignment(db, rater=make_user(db)) is None


def test_skip_releases_the_place_and_is_not_offered_again(db: Session) -> None:
    campaign = make_campaign(db, overlap=1)
    [comparison] = make_comparisons(db, campaign)
    rater, other = make_user(db), make_user(db)
    assignment = next_assignment(db, rater=rater)
    assert assignment is not None
    with pytest.raises(ValidationFailed):
        skip_assignment(db, rater=rater, assignment_id=assignment.id, reason="bored")
    with pytest.raises(NotFound):
        skip_assignment(db, rater=other, assignment_id=assignment.id, reason="specialty")
    skipped = skip_assignment(db, rater=rater, assignment_id=assignment.id, reason="specialty",
                              note="dermatology")
    assert (skipped.state, skipped.skip_reason, skipped.skip_note) == (
        "skipped", "specialty", "dermatology")
    assert next_assignment(db, rater=rater) is None
    taken = next_assignment(db, rater=other)
    assert taken is not None and taken.comparison_id == comparison.id
    with pytest.raises(Conflict):
        skip_assignment(db, rater=rater, assignment_id=assignment.id, reason="specialty")


def test_progress_counts_today_campaign_and_left(db: Session) -> None:
    campaign = make_campaign(db, overlap=1)
    make_comparisons(db, campaign, count=3)
    rater = make_user(db)
    assignment = next_assignment(db, rater=rater)
    assert assignment is not None
    assert progress(db, rater=rater, campaign_id=campaign.id) == Progress(0, 0, 3)
    _judge(db, rater, assignment)
    p = progress(db, rater=rater, campaign_id=campaign.id)
    assert (p.done_today, p.done_in_campaign, p.left) == (1, 1, 2)


def test_after_a_judgment_the_next_comes_from_the_same_campaign(db: Session) -> None:
    low = make_campaign(db, priority=0)
    campaign = make_campaign(db, priority=1, lease_minutes=7)
    make_comparisons(db, low, count=2)
    make_comparisons(db, campaign, count=2)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None and first.comparison.campaign_id == campaign.id
    continuing = _judge(db, rater, first)
    second = next_assignment(db, rater=rater, continuing=continuing)
    assert second is not None and second.comparison.campaign_id == campaign.id
    assert second.comparison_id != first.comparison_id
    # The campaign's own lease length, as the full rules give it.
    assert utcnow() + timedelta(minutes=6) < second.lease_expires_at < utcnow() + timedelta(minutes=8)


def test_after_a_judgment_a_campaign_now_first_in_order_comes_first(db: Session) -> None:
    campaign = make_campaign(db, priority=1)
    make_comparisons(db, campaign, count=2)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None
    urgent = make_campaign(db, priority=9)  # created while the rater was reading
    make_comparisons(db, urgent, count=1)
    second = next_assignment(db, rater=rater, continuing=_judge(db, rater, first))
    assert second is not None and second.comparison.campaign_id == urgent.id


def test_after_a_judgment_a_paused_campaign_gives_nothing_more(db: Session) -> None:
    campaign = make_campaign(db)
    make_comparisons(db, campaign, count=3)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None
    continuing = _judge(db, rater, first)
    campaign.status = "paused"
    db.flush()
    assert next_assignment(db, rater=rater, continuing=continuing) is None


def test_after_a_judgment_a_lease_still_held_is_shown_first(db: Session) -> None:
    # Two tabs: one lease judged in the first, another still held (in another campaign).
    campaign, other = make_campaign(db, priority=1), make_campaign(db, priority=0)
    make_comparisons(db, campaign, count=3)
    [elsewhere] = make_comparisons(db, other)
    rater = make_user(db)
    first = next_assignment(db, rater=rater)
    assert first is not None and first.comparison.campaign_id == campaign.id
    held = Assignment(comparison_id=elsewhere.id, rater_id=rater.id, state="leased",
                      display_order=[0, 1], lease_expires_at=utcnow() + timedelta(minutes=5))
    db.add(held)
    db.flush()
    shown = next_assignment(db, rater=rater, continuing=_judge(db, rater, first))
    assert shown is not None and shown.id == held.id

"""Judgments: validation, idempotency, expired leases and corrections (PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.models import Assignment, Judgment
from app.services.assignment import next_assignment
from app.services.judgments import (
    JudgmentInput,
    correct_judgment,
    live_judgments,
    ranks_from_scale,
    submit_judgment,
)
from tests.factories import make_campaign, make_comparisons, make_user


def _leased(db: Session, *, k: int = 2, overlap: int = 3):
    campaign = make_campaign(db, overlap=overlap)
    make_comparisons(db, campaign, k=k)
    rater = make_user(db)
    assignment = next_assignment(db, rater=rater)
    assert assignment is not None
    return rater, assignment


def _count(db: Session) -> int:
    return db.scalar(select(func.count(Judgment.id))) or 0


@pytest.mark.parametrize(
    ("scale", "ranks", "strength"),
    [(-3, [0, 1], 3), (-1, [0, 1], 1), (0, [0, 0], 0), (2, [1, 0], 2), (3, [1, 0], 3)],
)
def test_the_two_way_scale_maps_to_ranks_and_strength(scale, ranks, strength) -> None:
    assert ranks_from_scale(scale) == (ranks, strength)


def test_a_two_way_judgment_is_recorded_raw(db: Session) -> None:
    rater, assignment = _leased(db)
    a, b = assignment.display_order
    result = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
        idempotency_key="two-way-key-1", scale=2, flags={0: ["factually_wrong"]},
        rationale="  B cites the guideline  ", time_spent_ms=5300))
    j = result.judgment
    assert (j.shown_order, j.ranks, j.strength) == ([a, b], [1, 0], 2)
    assert j.flags == {str(a): ["factually_wrong"]} and j.rationale == "B cites the guideline"
    assert (j.revision, j.supersedes_id, j.lease_expired, j.time_spent_ms) == (0, None, False, 5300)
    assert assignment.state == "submitted" and assignment.completed_at is not None


def test_the_database_marks_the_assignment_submitted_by_the_first_judgment_only(
    db: Session,
) -> None:
    rater, assignment = _leased(db)
    first = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
        idempotency_key="first-key-1", scale=1)).judgment

    def stored() -> tuple[str, object]:  # the row as the database has it, not the session's copy
        row = db.execute(select(Assignment.state, Assignment.completed_at)
                         .where(Assignment.id == assignment.id)).one()
        return row[0], row[1]

    assert stored() == ("submitted", first.created_at)
    correct_judgment(db, rater=rater, judgment_id=first.id,
                     data=JudgmentInput(idempotency_key="first-fix-1", scale=-1))
    assert stored() == ("submitted", first.created_at)  # a correction leaves it as it was


def test_a_k_way_ranking_with_ties_is_stored_as_dense_ranks(db: Session) -> None:
    rater, assignment = _leased(db, k=4)
    given = dict(enumerate([1, 3, 1, 4]))  # two tied best, gaps allowed
    j = submit_judgment(db, rater=rater, assignment_id=assignment.id,
                        data=JudgmentInput(idempotency_key="k-way-key-1", ranks=given)).judgment
    assert j.ranks == [0, 1, 0, 2] and j.strength is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (JudgmentInput(idempotency_key="bad-1"), "idempotency_key"),
        (JudgmentInput(idempotency_key="bad-ranks-1", ranks={}), "ranks"),
        (JudgmentInput(idempotency_key="bad-ranks-2", ranks={7: 1}), "ranks"),
        (JudgmentInput(idempotency_key="bad-reason-1", not_rankable=True), "not_rankable_reason"),
        (JudgmentInput(idempotency_key="bad-rationale", rationale="x" * 5001, ranks={}), "rationale"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(db: Session, data, field) -> None:
    rater, assignment = _leased(db, k=3)
    before = _count(db)
    with pytest.raises(ValidationFailed) as error:
        submit_judgment(db, rater=rater, assignment_id=assignment.id, data=data)
    assert error.value.field == field
    assert _count(db) == before and assignment.state == "leased"


def test_ranks_must_cover_exactly_the_shown_responses(db: Session) -> None:
    rater, assignment = _leased(db, k=3)
    for ranks in ({0: 1, 1: 2}, {0: 1, 1: 2, 2: 4}, {0: 1, 1: 2, 2: 3, 3: 1}):
        with pytest.raises(ValidationFailed):
            submit_judgment(db, rater=rater, assignment_id=assignment.id,
                            data=JudgmentInput(idempotency_key="cover-key-1", ranks=ranks))
    assert _count(db) == 0


def test_flags_must_be_known_and_unsafe_needs_a_rationale(db: Session) -> None:
    rater, assignment = _leased(db)
    a, _ = assignment.display_order
    with pytest.raises(ValidationFailed, match="unknown flag"):
        submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
            idempotency_key="flag-key-01", scale=0, flags={0: ["boring"]}))
    with pytest.raises(ValidationFailed, match="response A is unsafe") as error:
        submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
            idempotency_key="flag-key-01", scale=0, flags={0: ["unsafe"]}))
    assert error.value.field == "rationale"
    j = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
        idempotency_key="flag-key-01", scale=3, flags={0: ["unsafe"]},
        rationale="A misses a STEMI")).judgment
    assert j.flags == {str(a): ["unsafe"]}


def test_not_rankable_keeps_the_reason_and_no_ranks(db: Session) -> None:
    rater, assignment = _leased(db, k=3)
    j = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=JudgmentInput(
        idempotency_key="none-ok-key", not_rankable=True,
        not_rankable_reason="all miss the red flag")).judgment
    assert j.not_rankable and j.ranks is None and j.not_rankable_reason == "all miss the red flag"


def test_a_double_submit_records_one_judgment(db: Session) -> None:
    rater, assignment = _leased(db)
    data = JudgmentInput(idempotency_key="double-click", scale=-1)
    first = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=data)
    again = submit_judgment(db, rater=rater, assignment_id=assignment.id, data=data)
    assert not first.replayed and again.replayed and again.judgment.id == first.judgment.id
    assert _count(db) == 1


def test_a_second_judgment_with_a_new_key_is_refused(db: Session) -> None:
    rater, assignment = _leased(db)
    submit_judgment(db, rater=rater, assignment_id=assignment.id,
                    data=JudgmentInput(idempotency_key="first-key-1", scale=0))
    with pytest.raises(Conflict, match="history"):
        submit_judgment(db, rater=rater, assignment_id=assignment.id,
                        data=JudgmentInput(idempotency_key="second-key-1", scale=1))
    assert _count(db) == 1


def test_a_judgment_on_someone_elses_assignment_is_not_found(db: Session) -> None:
    _, assignment = _leased(db)
    intruder = make_user(db)
    with pytest.raises(NotFound):
        submit_judgment(db, rater=intruder, assignment_id=assignment.id,
                        data=JudgmentInput(idempotency_key="intruder-1", scale=0))
    assert _count(db) == 0 and db.get(Assignment, assignment.id).state == "leased"


def test_a_correction_is_a_new_revision_and_the_old_row_stays(db: Session) -> None:
    rater, assignment = _leased(db)
    first = submit_judgment(db, rater=rater, assignment_id=assignment.id,
                            data=JudgmentInput(idempotency_key="orig-key-1", scale=-3)).judgment
    data = JudgmentInput(idempotency_key="fix-key-001", scale=1, rationale="misread B")
    fixed = correct_judgment(db, rater=rater, judgment_id=first.id, data=data)
    assert (fixed.judgment.revision, fixed.judgment.supersedes_id) == (1, first.id)
    assert fixed.judgment.shown_order == first.shown_order and first.ranks == [0, 1]
    assert correct_judgment(db, rater=rater, judgment_id=first.id, data=data).replayed
    with pytest.raises(Conflict, match="newer revision"):
        correct_judgment(db, rater=rater, judgment_id=first.id,
                         data=JudgmentInput(idempotency_key="fix-key-002", scale=0))
    with pytest.raises(NotFound):
        correct_judgment(db, rater=make_user(db), judgment_id=fixed.judgment.id,
                         data=JudgmentInput(idempotency_key="fix-key-003", scale=0))
    assert [j.id for j in live_judgments(db, rater=rater)] == [fixed.judgment.id]
    assert _count(db) == 2

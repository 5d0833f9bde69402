"""The database itself rejects rows that would make the data untrustworthy."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Assignment, Comparison, Judgment, Schedule, User, utcnow
from tests.factories import make_campaign, make_comparisons, make_user


def _judgment(comparison: Comparison, rater: User, **overrides: object) -> dict[str, object]:
    order = [item.response_id for item in comparison.items]
    row: dict[str, object] = dict(
        comparison_id=comparison.id,
        rater_id=rater.id,
        shown_order=order,
        ranks=list(range(len(order))),
        idempotency_key="k1",
        revision=0,
        flags={},
        aspects={},
        rationale="",
        not_rankable=False,
        lease_expired=False,
        created_at=utcnow(),
    )
    row.update(overrides)
    return row


def _rejects(db: Session, model: type, row: dict[str, object]) -> None:
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(model).values(**row))


@pytest.fixture
def setup(db: Session) -> tuple[Comparison, User]:
    campaign = make_campaign(db)
    return make_comparisons(db, campaign)[0], make_user(db)


def test_second_live_judgment_for_the_same_rater_and_comparison_is_rejected(db, setup) -> None:
    comparison, rater = setup
    db.execute(insert(Judgment).values(**_judgment(comparison, rater)))
    _rejects(db, Judgment, _judgment(comparison, rater, idempotency_key="k2"))


def test_correction_must_supersede_and_each_judgment_is_superseded_once(db, setup) -> None:
    comparison, rater = setup
    first = db.execute(
        insert(Judgment).values(**_judgment(comparison, rater)).returning(Judgment.id)
    ).scalar_one()
    _rejects(db, Judgment, _judgment(comparison, rater, revision=1, idempotency_key="k2"))
    db.execute(
        insert(Judgment).values(
            **_judgment(comparison, rater, revision=1, supersedes_id=first, idempotency_key="k2")
        )
    )
    _rejects(
        db,
        Judgment,
        _judgment(comparison, rater, revision=2, supersedes_id=first, idempotency_key="k3"),
    )


def test_same_idempotency_key_twice_is_rejected(db, setup) -> None:
    comparison, rater = setup
    other = make_comparisons(db, make_campaign(db))[0]
    db.execute(insert(Judgment).values(**_judgment(comparison, rater)))
    _rejects(db, Judgment, _judgment(other, rater))


@pytest.mark.parametrize(
    "bad",
    [
        {"strength": 4},
        {"time_spent_ms": -1},
        {"not_rankable": True},
        {"rationale": "x" * 5001},
        {"comparison_id": 999999},
    ],
)
def test_judgment_values_out_of_range_are_rejected(db, setup, bad) -> None:
    comparison, rater = setup
    _rejects(db, Judgment, _judgment(comparison, rater, **bad))


def test_one_assignment_per_rater_and_comparison(db, setup) -> None:
    comparison, rater = setup
    row = dict(
        comparison_id=comparison.id,
        rater_id=rater.id,
        state="leased",
        display_order=[1, 2],
        lease_expires_at=utcnow(),
        created_at=utcnow(),
    )
    db.execute(insert(Assignment).values(**row))
    _rejects(db, Assignment, row)
    _rejects(db, Assignment, {**row, "rater_id": make_user(db).id, "state": "skipped"})


def test_gold_comparison_needs_its_answer(db, setup) -> None:
    comparison, _ = setup
    with pytest.raises(IntegrityError), db.begin_nested():
        comparison.is_gold = True
        db.flush()


def test_bad_user_and_schedule_rows_are_rejected(db, setup) -> None:
    user = dict(
        email="Upper@Example.org",
        password_hash="x",
        role="rater",
        pseudonym="r-x",
        display_name="",
        active=True,
        session_version=0,
        created_at=utcnow(),
    )
    _rejects(db, User, user)
    _rejects(db, User, {**user, "email": "a@example.org", "role": "owner"})
    campaign = make_campaign(db)
    schedule = dict(
        campaign_id=campaign.id, method="rloo", config={}, active=True, created_at=utcnow()
    )
    _rejects(db, Schedule, {**schedule, "cron": "0 3 * * *", "every_n_judgments": 50})
    _rejects(db, Schedule, schedule)

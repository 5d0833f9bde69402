"""Fifty raters claim and submit at once: every comparison ends with exactly `overlap` judgments."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import Comparison, Judgment, User
from app.services.assignment import next_assignment
from app.services.judgments import JudgmentInput, submit_judgment
from tests.factories import make_campaign, make_comparisons, make_raters
from tests.support import assert_counts_match_a_recount

RATERS, COMPARISONS, OVERLAP = 50, 40, 3


def _rate_until_done(engine: Engine, rater_id: int, start: threading.Barrier,
                     errors: list[BaseException], shortcut: bool) -> None:
    """One rater's loop: claim, submit, commit, until nothing is left; one connection each.
    `shortcut`: each claim after a judgment tries that campaign first, as the rating page's."""
    try:
        start.wait()
        continuing = None
        while True:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                rater = session.get_one(User, rater_id)
                assignment = next_assignment(session, rater=rater, continuing=continuing)
                if assignment is None:
                    return
                key = f"concurrent-c{assignment.comparison_id}-r{rater_id}"
                result = submit_judgment(session, rater=rater, assignment_id=assignment.id,
                                         data=JudgmentInput(idempotency_key=key, scale=0))
                continuing = result.continuing if shortcut else None
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


@pytest.mark.parametrize("shortcut", [False, True], ids=["full-rules", "after-a-judgment"])
def test_fifty_raters_at_once_end_with_exactly_overlap_judgments(
    committed_engine: Engine, shortcut: bool
) -> None:
    with Session(committed_engine) as session, session.begin():
        campaign = make_campaign(session, overlap=OVERLAP)
        comparison_ids = [c.id for c in make_comparisons(session, campaign, count=COMPARISONS)]
        rater_ids = [r.id for r in make_raters(session, RATERS)]
    start, errors = threading.Barrier(RATERS), []
    threads = [threading.Thread(target=_rate_until_done, args=(committed_engine, rid, start, errors, shortcut))
               for rid in rater_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with Session(committed_engine) as session:
        pairs = session.execute(select(Judgment.comparison_id, Judgment.rater_id)).all()
    per_comparison = Counter(c for c, _ in pairs)
    assert per_comparison == dict.fromkeys(comparison_ids, OVERLAP)
    assert len(set(pairs)) == len(pairs)  # no rater twice on one comparison
    with Session(committed_engine) as session:
        assert_counts_match_a_recount(session)  # the kept counts agree, and all are filled
        assert set(session.scalars(select(Comparison.open_places))) == {0}

"""The demo database: claiming is correct on SQLite too, with several threads at once."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import build_engine
from app.migrate import upgrade
from app.models import Judgment, User
from app.services.assignment import next_assignment
from app.services.judgments import JudgmentInput, submit_judgment
from tests.factories import make_campaign, make_comparisons, make_raters


def test_eight_threads_on_sqlite_end_with_exactly_overlap_judgments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    engine = build_engine(url)
    with Session(engine) as session, session.begin():
        campaign = make_campaign(session, overlap=2)
        ids = [c.id for c in make_comparisons(session, campaign, count=6)]
        rater_ids = [r.id for r in make_raters(session, 8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(rater_ids))

    def rate(rater_id: int) -> None:
        try:
            start.wait()
            continuing = None  # after a judgment, the next claim's shortcut (as the page's)
            while True:
                with Session(engine) as session, session.begin():
                    rater = session.get_one(User, rater_id)
                    assignment = next_assignment(session, rater=rater, continuing=continuing)
                    if assignment is None:
                        return
                    continuing = submit_judgment(
                        session, rater=rater, assignment_id=assignment.id,
                        data=JudgmentInput(idempotency_key=f"sqlite-{assignment.id}", scale=1),
                    ).continuing
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(rid,)) for rid in rater_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with Session(engine) as session:
        pairs = session.execute(select(Judgment.comparison_id, Judgment.rater_id)).all()
    engine.dispose()
    assert Counter(c for c, _ in pairs) == dict.fromkeys(ids, 2)
    assert len(set(pairs)) == len(pairs)

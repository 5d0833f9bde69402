"""The rater's turn on PostgreSQL (app.web.turn): the judgment, the claim and the next page in two
statements must show what the general path shows, and hand over to it where it must."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Judgment
from app.models.rating import AssignmentState
from tests.factories import add_comparison, make_campaign, make_comparisons
from tests.web import HTML, HX, form_of, rater_logged_in

_PROGRESS = re.compile(
    r"Today: <strong>(\d+)</strong>.*?This campaign: <strong>(\d+)</strong> done"
    r".*?<strong>(\d+)</strong> left",
    re.S,
)


def _progress(html: str) -> tuple[int, int, int]:
    found = _PROGRESS.search(html)
    assert found is not None, html
    today, in_campaign, left = found.groups()
    return int(today), int(in_campaign), int(left)


def _submit(client: TestClient, html: str, **fields: str) -> str:
    response = client.post("/rate/submit", headers=HX, data={**form_of(html), "scale": "1", **fields})
    assert response.status_code == 200, response.text
    return response.text


def test_the_progress_line_after_each_submit_is_what_a_reload_shows(
    client: TestClient, db: Session
) -> None:
    campaign = make_campaign(db, overlap=2)
    make_comparisons(db, campaign, count=4)  # 8 places
    rater_logged_in(client, db)
    page = client.get("/rate", headers=HTML).text
    assert _progress(page) == (0, 0, 8)  # the comparison held is still to do
    for done in (1, 2, 3):
        page = _submit(client, page)
        # done judged, one held: 8 - done - 1 open places, plus the one on the page
        assert _progress(page) == (done, done, 8 - done)
        assert _progress(client.get("/rate", headers=HTML).text) == _progress(page)


def test_the_comparison_just_judged_is_not_offered_again(client: TestClient, db: Session) -> None:
    # Overlap 2: after the rater's judgment the comparison still wants a rater, and it is the
    # closest to completion, so first in the claim order.
    campaign = make_campaign(db, overlap=2)
    add_comparison(db, campaign, ["first A", "first B"], prompt="first prompt")
    add_comparison(db, campaign, ["second A", "second B"], prompt="second prompt")
    rater = rater_logged_in(client, db)
    page = client.get("/rate", headers=HTML).text
    first = form_of(page)["assignment_id"]
    page = _submit(client, page)
    second = form_of(page)["assignment_id"]
    assert second != first and ("first prompt" in page) != ("second prompt" in page)
    states = dict(db.execute(select(Assignment.id, Assignment.state)
                             .where(Assignment.rater_id == rater.id)).all())
    assert states == {int(first): AssignmentState.SUBMITTED, int(second): AssignmentState.LEASED}
    page = _submit(client, page)
    assert "Nothing left to rate" in page  # both judged, though both still want a rater
    assert db.scalar(select(func.count(Judgment.id))) == 2


def test_a_campaign_given_priority_meanwhile_comes_next(client: TestClient, db: Session) -> None:
    routine = make_campaign(db, overlap=1)
    add_comparison(db, routine, ["routine A", "routine B"], prompt="routine prompt")
    add_comparison(db, routine, ["routine C", "routine D"], prompt="routine prompt")
    rater_logged_in(client, db)
    page = client.get("/rate", headers=HTML).text
    urgent = make_campaign(db, overlap=1, priority=10)
    add_comparison(db, urgent, ["urgent A", "urgent B"], prompt="urgent prompt")
    page = _submit(client, page)
    assert "urgent prompt" in page and "routine prompt" not in page
    assert _progress(page) == (1, 0, 1)  # judged today, none yet in this campaign


def test_a_form_key_used_for_another_comparison_is_refused_and_changes_nothing(
    client: TestClient, db: Session
) -> None:
    campaign = make_campaign(db, overlap=1)
    make_comparisons(db, campaign, count=3)
    rater_logged_in(client, db)
    first = client.get("/rate", headers=HTML).text
    second = _submit(client, first)
    reused = {**form_of(second), "idempotency_key": form_of(first)["idempotency_key"]}
    response = client.post("/rate/submit", headers=HX, data={**reused, "scale": "1"})
    assert response.status_code == 409 and "already used" in response.text
    assert db.scalar(select(func.count(Judgment.id))) == 1
    held = db.get(Assignment, int(form_of(second)["assignment_id"]))
    assert held is not None and held.state == AssignmentState.LEASED
    claimed = select(func.count(Assignment.id)).where(Assignment.rater_id == held.rater_id)
    assert db.scalar(claimed) == 2  # no third comparison claimed by the refused submit


def test_who_is_submitting_is_checked_before_what_they_sent(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db, overlap=1)
    make_comparisons(db, campaign, count=2)
    rater = rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    rater.active = False  # deactivated by an admin meanwhile
    db.flush()
    malformed = {**fields, "assignment_id": "1" + "0" * 30, "scale": "1"}
    response = client.post("/rate/submit", headers=HX, data=malformed, follow_redirects=False)
    # Sent back to the login (htmx follows HX-Redirect), not told their form was malformed.
    assert response.headers.get("HX-Redirect") == "/login", response.text

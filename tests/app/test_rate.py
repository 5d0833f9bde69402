"""The rating pages through HTTP: blind display, htmx submit/skip, errors, history, corrections."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Judgment
from tests.factories import SECRET_MODEL, add_comparison, make_campaign, make_comparisons, make_user
from tests.web import HTML, HX, csrf_of, form_of, login, rater_logged_in


def judgments(db: Session) -> int:
    return db.scalar(select(func.count(Judgment.id))) or 0


def test_the_page_shows_prompt_context_and_responses_but_no_model(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db, guidelines_md="**Safety first**")
    add_comparison(db, campaign, ["Call **911** now.", "Rest and see your GP."])
    rater_logged_in(client, db)
    page = client.get("/rate", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "Chest pain?" in html and "cardiology" in html and "<strong>911</strong>" in html
    assert "Rest and see your GP." in html and "<strong>Safety first</strong>" in html
    assert SECRET_MODEL not in html
    assert "Content-Security-Policy" in page.headers and "script-src 'self'" in page.headers["Content-Security-Policy"]
    fields = form_of(html)
    assert len(fields["idempotency_key"]) >= 16 and fields["assignment_id"]
    assert 'hx-headers=\'{"X-CSRF-Token": "' + fields["csrf_token"] in html


def test_htmx_submit_records_once_and_swaps_in_the_next(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["first A", "first B"], prompt="first prompt")
    add_comparison(db, campaign, ["second A", "second B"], prompt="second prompt")
    rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    data = {**fields, "scale": "-2", "rationale": "A is safer", "time_spent_ms": "4200"}
    first = client.post("/rate/submit", data=data, headers=HX)
    assert first.status_code == 200 and "<html" not in first.text
    assert 'id="workspace"' in first.text and "Today: <strong>1</strong>" in first.text
    replay = client.post("/rate/submit", data=data, headers=HX)  # a double click or a retry
    assert replay.status_code == 200 and judgments(db) == 1
    assert form_of(replay.text)["assignment_id"] == form_of(first.text)["assignment_id"]
    j = db.scalar(select(Judgment))
    assert j.strength == 2 and j.ranks == [0, 1] and j.time_spent_ms == 4200


def test_without_htmx_a_submit_redirects_to_the_next(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["a", "b"])
    rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    response = client.post("/rate/submit", data={**fields, "scale": "0"}, headers=HTML,
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/rate"
    assert "Nothing left to rate" in client.get("/rate", headers=HTML).text


def test_a_bad_ranking_shows_a_message_in_place_and_changes_nothing(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["one", "two", "three", "four"])
    rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    response = client.post("/rate/submit", data={**fields, "rank-0": "1", "rank-1": "2"}, headers=HX)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#flash"
    assert "Give every response a rank: C, D has none" in response.text
    assert judgments(db) == 0
    page = client.post("/rate/submit", data={**fields, "rank-0": "x"}, headers=HTML)
    assert page.status_code == 422 and "Nothing was changed" in page.text
    ok = client.post("/rate/submit", headers=HX, data={
        **fields, "rank-0": "2", "rank-1": "1", "rank-2": "2", "rank-3": "4",
        "flag-3": ["unsafe", "factually_wrong"], "rationale": "D doubles the dose"})
    assert ok.status_code == 200
    j = db.scalar(select(Judgment))
    assert j.ranks == [1, 0, 1, 2] and j.flags == {str(j.shown_order[3]): ["factually_wrong", "unsafe"]}


def test_another_raters_assignment_cannot_be_judged(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["a", "b"])
    owner = rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    client.cookies.clear()
    rater_logged_in(client, db)
    token = csrf_of(client, "/history")
    response = client.post("/rate/submit", headers=HX, data={
        **fields, "csrf_token": token, "scale": "1"})
    assert response.status_code == 404 and "not assigned to you" in response.text
    assert judgments(db) == 0
    assert db.scalar(select(Assignment.state).where(Assignment.rater_id == owner.id)) == "leased"


def test_skip_with_a_reason_shows_the_next(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["a", "b"], prompt="derm question")
    add_comparison(db, campaign, ["c", "d"], prompt="cardio question")
    rater_logged_in(client, db)
    html = client.get("/rate", headers=HTML).text
    fields = form_of(html)
    response = client.post("/rate/skip", headers=HX, data={
        "csrf_token": fields["csrf_token"], "assignment_id": fields["assignment_id"],
        "skip_reason": "specialty", "skip_note": " paediatric dosing "})
    assert response.status_code == 200
    assert form_of(response.text)["assignment_id"] != fields["assignment_id"]
    assert "Skipped (Outside my specialty)" in response.text
    skipped = db.get(Assignment, int(fields["assignment_id"]))
    assert (skipped.state, skipped.skip_reason, skipped.skip_note) == (
        "skipped", "specialty", "paediatric dosing")


def test_history_shows_only_my_work_and_a_correction_is_a_new_revision(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db, overlap=2)
    add_comparison(db, campaign, ["alpha", "beta"], prompt="shared prompt")
    other = make_user(db)
    login(client, other.email)
    fields = form_of(client.get("/rate", headers=HTML).text)
    client.post("/rate/submit", data={**fields, "scale": "3"}, headers=HX)
    client.cookies.clear()
    rater_logged_in(client, db)
    assert "No judgments yet" in client.get("/history", headers=HTML).text
    fields = form_of(client.get("/rate", headers=HTML).text)
    client.post("/rate/submit", data={**fields, "scale": "-1"}, headers=HX)
    history = client.get("/history", headers=HTML).text
    assert "shared prompt" in history and "A &gt; B (slightly better)" in history
    mine = db.scalars(select(Judgment).order_by(Judgment.id)).all()[-1]
    page = client.get(f"/history/{mine.id}/correct", headers=HTML).text
    assert 'value="-1" checked' in page
    correction = form_of(page)
    response = client.post(f"/history/{mine.id}/correct", headers=HX,
                           data={**correction, "scale": "2", "rationale": "misread"})
    assert response.headers["HX-Redirect"] == f"/history?corrected={mine.id + 1}"
    rows = db.scalars(select(Judgment).where(Judgment.rater_id == mine.rater_id)
                      .order_by(Judgment.revision)).all()
    assert [(r.revision, r.supersedes_id) for r in rows] == [(0, None), (1, mine.id)]
    assert rows[0].ranks == [0, 1]  # the original is untouched
    assert "B &gt; A (better)" in client.get("/history", headers=HTML).text
    theirs = db.scalars(select(Judgment).where(Judgment.rater_id == other.id)).one()
    assert client.get(f"/history/{theirs.id}/correct", headers=HTML).status_code == 404


def test_response_markup_is_sanitised(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ['<img src=x onerror="alert(1)">', "<script>alert(2)</script>"])
    rater_logged_in(client, db)
    html = client.get("/rate", headers=HTML).text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_guidelines_page(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db, guidelines_md="# Rules\n\n<script>x()</script>")
    rater_logged_in(client, db)
    html = client.get(f"/guidelines/{campaign.id}", headers=HTML).text
    assert "<h1>Rules</h1>" in html and "<script>x()" not in html
    assert client.get("/guidelines/999999", headers=HTML).status_code == 404


def test_gold_comparisons_look_like_any_other(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db, gold_rate=1.0)
    make_comparisons(db, campaign, gold=True)
    rater_logged_in(client, db)
    html = client.get("/rate", headers=HTML).text
    assert 'id="response-A"' in html and "gold" not in html.lower()


def test_differences_come_on_request_for_the_raters_own_comparison_only(
    client: TestClient, db: Session
) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["Take aspirin <b>now</b> and call 911.", "Take aspirin and rest."])
    rater_logged_in(client, db)
    page = client.get("/rate", headers=HTML).text
    assert "<mark>" not in page  # the page no longer pays for a diff nobody asked for
    assignment_id = form_of(page)["assignment_id"]
    diff = client.get(f"/rate/diff/{assignment_id}", headers=HX)
    assert diff.status_code == 200
    assert diff.text.count('hx-swap-oob="true"') == 2 and "<mark>" in diff.text
    assert "<b>" not in diff.text and "&lt;b&gt;" in diff.text  # escaped, never markup
    rater_logged_in(client, db)  # someone else
    assert client.get(f"/rate/diff/{assignment_id}", headers=HX).status_code == 404

"""The head-to-head option of a round: queued from the form and the API; judged on its page."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ModelVersion, RoundStep, TrainingRound
from app.models.rounds import STEP_NAMES
from app.services.rounds import queue_round
from tests.factories import (
    make_campaign,
    make_comparisons,
    make_judgment,
    make_raters,
    make_token,
    make_user,
)
from tests.web import HTML, csrf_of, login


def _admin(client: TestClient, db: Session) -> None:
    login(client, make_user(db, role="admin").email)


def test_the_queue_form_offers_head_to_head_and_refuses_more_than_eight_responses(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    _admin(client, db)
    page = client.get("/admin/rounds", headers=HTML).text
    assert 'type="checkbox" name="head_to_head"' in page and "Head-to-head: the current policy" in page
    token = csrf_of(client, "/admin/rounds")
    form = {"csrf_token": token, "campaign_id": str(campaign.id), "responses_per_prompt": "3"}
    queued = client.post("/admin/rounds", headers=HTML, follow_redirects=False, data={**form, "head_to_head": "true"})
    assert queued.status_code == 303
    assert db.scalar(select(TrainingRound)).config == {"responses_per_prompt": 3, "head_to_head": True}
    # 5 new beside 5 current would be 10 responses in one comparison: refused, with the reason.
    too_many = client.post("/admin/rounds", headers=HTML, data={**form, "responses_per_prompt": "5", "head_to_head": "true"})
    assert too_many.status_code == 422 and "K at most 4" in too_many.text
    unticked = client.post("/admin/rounds", headers=HTML, follow_redirects=False, data=form)
    assert unticked.status_code == 303
    latest = db.scalar(select(TrainingRound).order_by(TrainingRound.id.desc()))
    assert "head_to_head" not in latest.config  # off by default


def test_the_api_queues_a_head_to_head(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    _, plaintext = make_token(db, scope="write")
    auth = {"Authorization": f"Bearer {plaintext}"}
    made = client.post("/api/v1/rounds", headers=auth,
                       json={"campaign_id": campaign.id, "config": {"head_to_head": True}})
    assert made.status_code == 201 and made.json()["config"] == {"head_to_head": True}
    refused = client.post("/api/v1/rounds", headers=auth, json={
        "campaign_id": campaign.id, "config": {"head_to_head": True, "responses_per_prompt": 6}})
    assert refused.status_code == 422 and refused.json()["field"] == "head_to_head"


def test_the_round_page_says_how_often_physicians_preferred_the_new_policy(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    r = queue_round(db, campaign_id=campaign.id, config={"head_to_head": True})
    r.status = "succeeded"
    new = ModelVersion(name=f"round-{r.id}-rloo-policy", kind="policy", path="/m/p", round_id=r.id)
    db.add(new)
    db.flush()
    rater = make_raters(db, 1)[0]
    for n, comparison in enumerate(make_comparisons(db, campaign, count=4)):
        comparison.round_id = r.id
        a, b = (item.response for item in comparison.items)
        a.model_version_id = new.id  # b is the current policy's (the base: no version row)
        # Physicians prefer the new policy's response in 3 comparisons out of 4.
        make_judgment(db, comparison, rater, shown_order=[a.id, b.id], ranks=[0, 1] if n < 3 else [1, 0])
    for position, name in enumerate(STEP_NAMES):
        metrics = {"generate": {"head_to_head": True}, "publish": {"policy_version_id": new.id}}.get(name, {})
        db.add(RoundStep(round_id=r.id, name=name, position=position, status="succeeded", metrics=metrics))
    plain = queue_round(db, campaign_id=campaign.id)
    db.flush()
    _admin(client, db)
    html = client.get(f"/admin/rounds/{r.id}", headers=HTML).text
    assert "preferred the new policy's response in <strong>75%</strong> of 4 pairs" in html
    assert "Head-to-head" not in client.get(f"/admin/rounds/{plain.id}", headers=HTML).text

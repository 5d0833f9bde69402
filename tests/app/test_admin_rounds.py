"""The admin's loop pages over HTTP: roles on every route, queue, schedule, cancel, the round page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import RoundStep, Schedule, TrainingRound
from app.models.rounds import STEP_NAMES
from app.services.rounds import queue_round
from app.web.admin_rounds import router
from tests.factories import make_campaign, make_comparisons, make_judgment, make_raters, make_user
from tests.web import HTML, csrf_of, login

ROUTES = [(method, route.path.replace("{round_id}", "1").replace("{schedule_id}", "1"))
          for route in router.routes for method in sorted(route.methods)]  # type: ignore[attr-defined]


def _admin(client: TestClient, db: Session):
    admin = make_user(db, role="admin")
    login(client, admin.email)
    return admin


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_rater_gets_403_on_every_loop_route(client: TestClient, db: Session, method: str, path: str) -> None:
    rater = make_user(db)
    login(client, rater.email)
    token = csrf_of(client, "/history")
    response = client.request(method, path, headers=HTML, data={"csrf_token": token} if method == "POST" else None)
    assert response.status_code == 403


def test_every_loop_route_is_in_the_matrix() -> None:
    assert {p for _, p in ROUTES} >= {"/admin/rounds", "/admin/rounds/1", "/admin/rounds/1/cancel",
                                     "/admin/schedules", "/admin/schedules/1/active", "/admin/models"}


def test_an_admin_queues_a_round_from_the_form_with_typed_hyperparameters(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    admin = _admin(client, db)
    page = client.get("/admin/rounds", headers=HTML)
    assert page.status_code == 200 and campaign.name in page.text and "Queue round" in page.text
    token = csrf_of(client, "/admin/rounds")
    response = client.post("/admin/rounds", headers=HTML, follow_redirects=False, data={
        "csrf_token": token, "campaign_id": str(campaign.id), "method": "ppo", "policy_steps": "7",
        "kl_coef": "0.1", "reward_epochs": ""})
    assert response.status_code == 303
    queued = db.scalar(select(TrainingRound))
    assert response.headers["location"] == f"/admin/rounds/{queued.id}"
    assert (queued.method, queued.config, queued.created_by_id) == ("ppo", {"policy_steps": 7, "kl_coef": 0.1}, admin.id)
    listed = client.get("/admin/rounds", headers=HTML).text
    assert f'href="/admin/rounds/{queued.id}"' in listed and admin.email in listed
    bad = client.post("/admin/rounds", headers=HTML, data={
        "csrf_token": token, "campaign_id": str(campaign.id), "policy_steps": "-1"})
    assert bad.status_code == 422 and "policy_steps" in bad.text
    assert client.post("/admin/rounds", headers=HTML, data={"campaign_id": str(campaign.id)}).status_code == 403


def test_an_admin_creates_pauses_and_resumes_schedules(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    _admin(client, db)
    token = csrf_of(client, "/admin/rounds")
    for data in ({"cron": "0 2 * * *"}, {"every_n_judgments": "50"}):
        response = client.post("/admin/schedules", headers=HTML, follow_redirects=False,
                               data={"csrf_token": token, "campaign_id": str(campaign.id), **data})
        assert response.status_code == 303
    cron, every = db.scalars(select(Schedule).order_by(Schedule.id)).all()
    assert (cron.cron, every.every_n_judgments) == ("0 2 * * *", 50)
    bad = client.post("/admin/schedules", headers=HTML,
                      data={"csrf_token": token, "campaign_id": str(campaign.id), "cron": "whenever"})
    assert bad.status_code == 422 and "not a cron expression" in bad.text.lower()
    client.post(f"/admin/schedules/{cron.id}/active", headers=HTML, data={"csrf_token": token, "active": "0"})
    db.refresh(cron)
    assert cron.active is False and "paused" in client.get("/admin/rounds", headers=HTML).text
    client.post(f"/admin/schedules/{cron.id}/active", headers=HTML, data={"csrf_token": token, "active": "1"})
    db.refresh(cron)
    assert cron.active is True


def test_cancel_a_queued_round_from_its_page(client: TestClient, db: Session) -> None:
    queued = queue_round(db, campaign_id=make_campaign(db).id)
    _admin(client, db)
    page = client.get(f"/admin/rounds/{queued.id}", headers=HTML).text
    assert "Cancel round" in page and 'hx-trigger="every 5s"' in page
    token = csrf_of(client, f"/admin/rounds/{queued.id}")
    client.post(f"/admin/rounds/{queued.id}/cancel", headers=HTML, data={"csrf_token": token})
    db.refresh(queued)
    assert queued.status == "cancelled"
    again = client.post(f"/admin/rounds/{queued.id}/cancel", headers=HTML, data={"csrf_token": token})
    assert again.status_code == 409
    assert client.get("/admin/rounds/99999", headers=HTML).status_code == 404


def _steps(db: Session, round_id: int, metrics: dict[str, dict], log: str = "") -> None:
    for position, name in enumerate(STEP_NAMES):
        db.add(RoundStep(round_id=round_id, name=name, position=position, status="succeeded",
                         metrics=metrics.get(name, {}), log_tail=log))
    db.flush()


def test_the_round_page_shows_the_timeline_charts_and_an_escaped_log(client: TestClient, db: Session) -> None:
    done = queue_round(db, campaign_id=make_campaign(db).id)
    done.status = "succeeded"
    _steps(db, done.id, {
        "reward": {"history": [{"epoch": 1, "train_accuracy": 0.6, "eval_accuracy": 0.55, "train_loss": 0.69},
                               {"epoch": 2, "train_accuracy": 0.8, "eval_accuracy": 0.7, "train_loss": 0.5}]},
        "policy": {"series": [{"step": s, "reward_mean": 0.1 * s, "kl": 0.01 * s, "loss": 1 - 0.1 * s} for s in range(5)]},
        "gate": {"passed": False, "reasons": ["KL to the current policy 9.000 > 5.0"]},
    }, log="<script>alert(1)</script> step output")
    _admin(client, db)
    html = client.get(f"/admin/rounds/{done.id}", headers=HTML).text
    assert html.count("<svg") == 5 and html.count("<polyline") == 6  # 2 + 1 + 1 + 1 + 1 lines
    for title in ("Reward model accuracy per epoch", "Mean reward per policy step", "KL to the reference per policy step"):
        assert f'aria-label="{title}"' in html
    assert "held-out 0.7" in html  # the line is labelled at its end, not in a legend
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Kept, not published: KL to the current policy" in html
    assert 'hx-trigger="every 5s"' not in html  # a finished round stops polling
    assert len(re.findall(r'class="step step-succeeded"', html)) == 6


def test_the_watch_flags_a_drop_in_reward_model_agreement_with_physicians(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    rater = make_raters(db, 1)[0]
    rounds = []
    for physicians_agree in (True, False):
        r = queue_round(db, campaign_id=campaign.id)
        r.status = "succeeded"
        comparisons = make_comparisons(db, campaign, count=4)
        scores = {}
        for c in comparisons:
            c.round_id = r.id
            a, b = (item.response_id for item in c.items)
            scores[str(a)], scores[str(b)] = 1.0, 0.0  # the reward model prefers a
            make_judgment(db, c, rater, shown_order=[a, b], ranks=[0, 1] if physicians_agree else [1, 0])
        _steps(db, r.id, {"publish": {"reward_scores": scores}})
        rounds.append(r)
    _admin(client, db)
    first = client.get(f"/admin/rounds/{rounds[0].id}", headers=HTML).text
    assert "<strong>100%</strong> of 4 pairs" in first and "dropped" not in first
    second = client.get(f"/admin/rounds/{rounds[1].id}", headers=HTML).text
    assert "<strong>0%</strong> of 4 pairs" in second and f"(round {rounds[0].id}: 100%)" in second
    assert "dropped by more than 10 points" in second


def test_model_versions_show_their_lineage(client: TestClient, db: Session) -> None:
    from app.models import ModelVersion

    r = queue_round(db, campaign_id=make_campaign(db).id)
    parent = ModelVersion(name="round-1-reward", kind="reward", path="/m/1", round_id=r.id, metrics={"eval_accuracy": 0.8})
    db.add(parent)
    db.flush()
    db.add(ModelVersion(name="round-2-reward", kind="reward", path="/m/2", round_id=r.id, parent_id=parent.id))
    db.flush()
    _admin(client, db)
    html = client.get("/admin/models", headers=HTML).text
    row = html.split("<td>round-2-reward</td>")[1].split("</tr>")[0]
    assert "<td>round-1-reward</td>" in row and "held-out accuracy" in html


def test_a_one_epoch_chart_shows_its_lone_value_mid_axis() -> None:
    from app.web.charts import (
        BOTTOM,
        LEFT,
        LINE_HEIGHT,
        LINE_WIDTH,
        RIGHT,
        TOP,
        Chart,
        render_chart,
    )

    svg = str(render_chart(Chart("Reward model accuracy per epoch", "epoch", {"held-out": [(1.0, 0.53)]})))
    dot = re.search(r'<circle class="series s0" cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert dot is not None and "held-out 0.53" in svg  # a lone point draws no line: the dot shows it
    plot_w, plot_h = LINE_WIDTH - LEFT - RIGHT, LINE_HEIGHT - TOP - BOTTOM
    assert float(dot[1]) == pytest.approx(LEFT + plot_w / 2, abs=0.1)
    assert float(dot[2]) == pytest.approx(TOP + plot_h / 2, abs=0.1)

"""The admin's rounds pages in real headless Chromium: queue, schedule, pause, cancel, watch a round."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import ModelVersion, RoundStep, Schedule, TrainingRound
from app.models.rounds import STEP_NAMES
from app.services.rounds import queue_round
from tests.factories import PASSWORD, make_campaign, make_user

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 900}


def _login(page, server: str, email: str) -> None:
    """Log in through the form; an admin lands on the console."""
    page.goto(server + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin**")


def _admin_and_campaign(engine: Engine) -> tuple[str, int]:
    with Session(engine) as session, session.begin():
        return make_user(session, role="admin").email, make_campaign(session, name="Cardiology triage").id


def test_an_admin_queues_schedules_pauses_and_cancels_in_the_browser(
    committed_engine: Engine, live_server: str, browser, shots: Path
) -> None:
    email, campaign_id = _admin_and_campaign(committed_engine)
    page = browser.new_page(viewport=DESKTOP)
    _login(page, live_server, email)
    page.goto(live_server + "/admin/rounds")
    page.select_option("#queue select[name=method]", "ppo")
    page.fill("#queue input[name=policy_steps]", "5")
    page.check("#queue input[name=head_to_head]")  # the current policy's answers beside the new one's
    page.click("#queue button[type=submit]")
    page.wait_for_url("**/admin/rounds/*")
    assert "queued" in page.inner_text("h1")
    with Session(committed_engine) as session:
        queued = session.scalar(select(TrainingRound))
        assert (queued.campaign_id, queued.method, queued.config) == (campaign_id, "ppo", {
            "policy_steps": 5, "kl_coef": 0.05, "responses_per_prompt": 2,
            "generate_prompts": 50, "head_to_head": True})

    page.goto(live_server + "/admin/rounds")
    page.fill("#schedules input[name=cron]", "0 2 * * *")
    page.click("#schedules button:has-text('Create schedule')")
    page.wait_for_selector("text=cron 0 2 * * *")
    page.fill("#schedules input[name=every_n_judgments]", "200")
    page.click("#schedules button:has-text('Create schedule')")
    page.wait_for_selector("text=every 200 new judgments")
    page.locator("#schedules tbody tr").first.locator("button:has-text('Pause')").click()
    page.wait_for_selector("#schedules button:has-text('Resume')")
    with Session(committed_engine) as session:
        assert [s.active for s in session.scalars(select(Schedule).order_by(Schedule.id))] == [False, True]
    page.screenshot(path=str(shots / "admin-rounds.png"), full_page=True)

    page.goto(f"{live_server}/admin/rounds/{queued.id}")
    page.click("button:has-text('Cancel round')")
    page.wait_for_selector("h1 .status-cancelled")
    assert page.locator("button:has-text('Cancel round')").count() == 0


def test_the_round_page_draws_its_charts_and_follows_a_running_round(
    committed_engine: Engine, live_server: str, browser, shots: Path
) -> None:
    email, campaign_id = _admin_and_campaign(committed_engine)
    with Session(committed_engine) as session, session.begin():
        r = queue_round(session, campaign_id=campaign_id, method="rloo")
        r.status, r.stage, r.progress, r.worker_id, r.attempts = "running", "gate", 0.5, "gpu-host-1:4242:ab12cd", 1
        history = [{"epoch": e, "train_accuracy": 0.5 + 0.1 * e, "eval_accuracy": 0.5 + 0.07 * e,
                    "train_loss": 0.69 - 0.08 * e} for e in range(1, 5)]
        series = [{"step": s, "reward_mean": -0.5 + 0.05 * s + 0.03 * (s % 3), "kl": 0.004 * s * s,
                   "loss": 0.8 - 0.02 * s} for s in range(20)]
        metrics = {"reward": {"history": history}, "policy": {"series": series}}
        for position, name in enumerate(STEP_NAMES):
            status = "succeeded" if position < 3 else ("running" if position == 3 else "pending")
            session.add(RoundStep(round_id=r.id, name=name, position=position, status=status,
                                  metrics=metrics.get(name, {}),
                                  log_tail=f"$ python -m trainer {name} ...\n{name}: done" if position < 3 else ""))
        session.add(ModelVersion(name="round-0-policy", kind="policy", path="/var/models/base", round_id=None))
        round_id = r.id
    page = browser.new_page(viewport=DESKTOP)
    _login(page, live_server, email)
    page.goto(f"{live_server}/admin/rounds/{round_id}")
    assert page.locator("svg.line-chart").count() == 5
    assert page.locator("svg.line-chart polyline").count() == 6
    box = page.locator("svg.line-chart").first.bounding_box()
    assert box is not None and box["width"] > 300  # drawn at a readable size
    page.locator("details summary").first.click()
    assert "python -m trainer snapshot" in page.inner_text("pre.log >> nth=0")
    page.screenshot(path=str(shots / "admin-round.png"), full_page=True)
    # The worker finishes: the page (polling with htmx) shows it without a reload.
    with Session(committed_engine) as session, session.begin():
        done = session.get_one(TrainingRound, round_id)
        done.status, done.progress = "succeeded", 1.0
    page.wait_for_selector("h1 .status-succeeded", timeout=15_000)

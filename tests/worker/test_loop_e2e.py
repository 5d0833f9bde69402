"""The loop end to end on PostgreSQL with tiny models on CPU: raters judge through the pages, a
worker process trains and publishes, raters see the new responses, a second round learns from both."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import (
    Assignment,
    Comparison,
    Judgment,
    ModelVersion,
    Response,
    RoundStep,
    TrainingRound,
)
from app.services.rounds import RoundConfig
from app.services.schedules import create_schedule
from tests.factories import (
    BAD,
    CONFIG,
    GOOD,
    PROMPTS,
    make_campaign,
    make_raters,
    make_user,
    seed_comparisons,
)
from tests.support import start_worker
from tests.web import HTML, csrf_of, form_of, login

HX = {"HX-Request": "true"}


def _prefer(html: str) -> dict[str, str]:
    """A simulated physician: the response saying GOOD more (and BAD less) is better; a pair
    on the scale, more responses ranked 1 (best) to K without ties."""
    shown = [part.split("</article>")[0] for part in html.split('<article class="response card"')[1:]]
    merit = [p.count(GOOD) - p.count(BAD) for p in shown]
    if len(shown) == 2:
        return {"scale": "-2" if merit[0] >= merit[1] else "2"}
    order = sorted(range(len(shown)), key=lambda i: -merit[i])
    return {f"rank-{i}": str(order.index(i) + 1) for i in range(len(shown))}


def rate_everything(client: TestClient) -> int:
    """Judge every comparison the rater is offered, through the htmx form; how many."""
    done, html = 0, client.get("/rate", headers=HTML).text
    while "assignment_id" in html:
        response = client.post("/rate/submit", headers=HX,
                               data={**form_of(html), **_prefer(html), "time_spent_ms": "900"})
        assert response.status_code == 200, response.text
        done, html = done + 1, response.text
    return done


def second_policy_id(session: Session, round_id: int) -> int:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.round_id == round_id, ModelVersion.kind == "policy"))


def _run_worker(env, tmp_path: Path) -> None:
    proc = start_worker(env, tmp_path / "worker.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "worker.log").read_text()[-4000:]


def test_raters_judge_a_worker_publishes_raters_see_it_and_round_two_learns_from_both(
    committed_engine: Engine, worker_env: dict[str, str], tmp_path: Path
) -> None:
    with Session(committed_engine) as session, session.begin():
        campaign = make_campaign(session, overlap=1)
        campaign_id = campaign.id
        seed_comparisons(session, campaign)
        raters = [r.email for r in make_raters(session, 2)]
        admin_email = make_user(session, role="admin").email
    clients = [TestClient(create_app()) for _ in raters]
    for client, email in zip(clients, raters, strict=True):
        login(client, email)
    assert sum(rate_everything(c) for c in clients) == PROMPTS

    # Round 1: queued by an admin on the rounds page.
    admin = TestClient(create_app())
    login(admin, admin_email)
    form = {"csrf_token": csrf_of(admin, "/admin/rounds"), "campaign_id": str(campaign_id),
            "method": "rloo", **{k: str(v) for k, v in CONFIG.items()}}
    queued = admin.post("/admin/rounds", data=form, headers=HTML, follow_redirects=False)
    assert queued.status_code == 303, queued.text
    _run_worker(worker_env, tmp_path)
    with Session(committed_engine) as session:
        first = session.get_one(TrainingRound, int(queued.headers["location"].rsplit("/", 1)[1]))
        steps = session.scalars(select(RoundStep).where(RoundStep.round_id == first.id)).all()
        assert first.status == "succeeded", (first.error, [(s.name, s.status, s.log_tail[-800:]) for s in steps])
        assert [s.status for s in sorted(steps, key=lambda s: s.position)] == ["succeeded"] * 6
        versions = session.scalars(select(ModelVersion).where(ModelVersion.round_id == first.id)).all()
        assert sorted(v.kind for v in versions) == ["policy", "reward"]
        reward_v = next(v for v in versions if v.kind == "reward")
        assert reward_v.metrics["eval_accuracy"] is not None and Path(reward_v.path, "config.json").is_file()
        policy_v = next(v for v in versions if v.kind == "policy")
        assert policy_v.published and Path(policy_v.path, "config.json").is_file()
        assert policy_v.metrics["gate"]["passed"] is True and "kl_new_to_current" in policy_v.metrics["gate"]
        new_texts = set(session.scalars(select(Response.text).where(Response.model_version_id == policy_v.id)))
        new = session.scalar(select(func.count(Comparison.id)).where(Comparison.round_id == first.id))
        assert new == CONFIG["generate_prompts"] and len(new_texts) >= 2
        first_snapshot = first.snapshot_judgment_id

    # The new policy's responses come first in a rater's "Next"; raters judge them, and the
    # every-N schedule (created now, so it counts only these) queues round 2, a head-to-head.
    with Session(committed_engine) as session, session.begin():
        create_schedule(session, campaign_id=campaign_id, every_n_judgments=new,
                        config={**CONFIG, "head_to_head": True})
    offered = int(form_of(clients[1].get("/rate", headers=HTML).text)["assignment_id"])
    with Session(committed_engine) as session:
        comparison = session.get_one(Assignment, offered).comparison
        assert comparison.round_id == first.id  # the rater's Next: the new policy's responses
        assert {i.response.text for i in comparison.items} <= new_texts
    assert sum(rate_everything(c) for c in clients) == new
    _run_worker(worker_env, tmp_path)
    with Session(committed_engine) as session:
        second = session.scalar(select(TrainingRound).where(TrainingRound.id != first.id))
        assert second is not None and second.trigger.startswith("judgments:")
        assert second.status == "succeeded", second.error
        latest = session.scalar(select(func.max(Judgment.id)))
        assert second.snapshot_judgment_id == latest > first_snapshot
        snap = session.scalar(select(RoundStep).where(RoundStep.round_id == second.id, RoundStep.name == "snapshot"))
        assert snap.metrics["judgments"] == PROMPTS + new  # both rounds' judgments
        parents = {v.kind: v.parent_id for v in session.scalars(
            select(ModelVersion).where(ModelVersion.round_id == second.id))}
        firsts = {v.kind: v.id for v in session.scalars(
            select(ModelVersion).where(ModelVersion.round_id == first.id))}
        assert parents == firsts  # lineage: round 2 starts from round 1's models
        # Head-to-head: each new comparison shows K responses of round 2's policy beside K of
        # the policy it was trained from (round 1's, the campaign's current one).
        k, new_policy = RoundConfig().responses_per_prompt, second_policy_id(session, second.id)
        texts: dict[int | None, list[str]] = {new_policy: [], parents["policy"]: []}
        for comparison in session.scalars(select(Comparison).where(Comparison.round_id == second.id)):
            versions = sorted(item.response.model_version_id for item in comparison.items)
            assert versions == sorted([parents["policy"]] * k + [new_policy] * k)
            for item in comparison.items:
                texts[item.response.model_version_id].append(item.response.text)
        assert sorted(texts[new_policy]) != sorted(texts[parents["policy"]])  # drawn apart, not copies

    # Physicians judge the head-to-head; the round page says how often they preferred the new policy.
    assert sum(rate_everything(c) for c in clients) == new
    page = admin.get(f"/admin/rounds/{second.id}", headers=HTML).text
    assert "Head-to-head" in page and f"of {new * k * k} pairs against the current policy" in page

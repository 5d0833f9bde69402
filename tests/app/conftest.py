"""Fixtures the app's tests share."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy.orm import Session

from app.services.assignment import next_assignment, skip_assignment
from app.services.rounds import queue_round
from app.services.schedules import create_schedule
from tests.app.callers import World
from tests.factories import make_campaign, make_comparisons, make_judgment, make_token, make_user


@pytest.fixture
def world(db: Session) -> World:
    """A rater with an assignment and a judgment; another rater; an admin; two tokens."""
    users = {"rater": make_user(db), "other_rater": make_user(db),
             "admin": make_user(db, role="admin"), "anonymous": None,
             "read_token": None, "write_token": None}
    campaign = make_campaign(db, overlap=2)
    judged, _open = make_comparisons(db, campaign, count=2)
    judgment = make_judgment(db, judged, users["rater"])
    assignment = next_assignment(db, rater=users["rater"])
    skipped = next_assignment(db, rater=users["other_rater"])
    assert assignment is not None and skipped is not None
    skip_assignment(db, rater=users["other_rater"], assignment_id=skipped.id, reason="other")
    csrf = {name: secrets.token_urlsafe(16) for name in users}
    tokens = {"read_token": make_token(db, scope="read")[1],
              "write_token": make_token(db, scope="write")[1]}
    ids = {"campaigns": campaign.id, "prompts": judged.prompt_id, "comparisons": judged.id,
           "judgments": judgment.id, "responses": judged.items[0].response_id,
           "rounds": queue_round(db, campaign_id=campaign.id).id, "skips": skipped.id}
    # Admin actions get targets of their own: deactivating or revoking a principal mid-matrix
    # would turn that principal's later answers into logins.
    params: dict[str, int | str] = {
        "campaign_id": campaign.id, "judgment_id": judgment.id, "assignment_id": assignment.id,
        "user_id": make_user(db).id, "token_id": make_token(db)[0].id, "comparison_id": judged.id,
        "response_id": judged.items[0].response_id, "token": "an-unknown-link-token",
        "round_id": ids["rounds"],
        "schedule_id": create_schedule(db, campaign_id=campaign.id, every_n_judgments=50).id,
    }
    return World(params, ids, users, csrf, tokens, assignment.id)

"""Skips are data (history, undo while the lease holds, API, export) and read-to-end is recorded."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import Assignment, Judgment
from app.schemas.export import ExportQuery
from app.services.assignment import next_assignment, skip_assignment
from app.services.export import export_bytes
from app.services.skips import undo_skip
from tests.factories import add_comparison, make_campaign, make_comparisons, make_token, make_user
from tests.web import HTML, HX, bearer, form_of, rater_logged_in
from trainer.data import parse_record
from trainer.schema import RankingRecord, SkipRecord


def _skipped(db: Session, *, overlap: int = 1) -> tuple[Assignment, object]:
    campaign = make_campaign(db, overlap=overlap)
    make_comparisons(db, campaign)
    rater = make_user(db)
    assignment = next_assignment(db, rater=rater)
    assert assignment is not None
    skip_assignment(db, rater=rater, assignment_id=assignment.id, reason="unclear", note="no weight given")
    return assignment, rater


def test_undo_while_the_lease_holds_gives_the_comparison_back(db: Session) -> None:
    assignment, rater = _skipped(db)
    undone = undo_skip(db, rater=rater, assignment_id=assignment.id)
    assert (undone.state, undone.skip_reason, undone.skip_note, undone.completed_at) == (
        "leased", None, None, None)
    assert next_assignment(db, rater=rater).id == assignment.id


def test_undo_is_refused_after_the_lease_or_once_others_took_the_place(db: Session) -> None:
    assignment, rater = _skipped(db)
    with pytest.raises(Conflict, match="lease"):
        undo_skip(db, rater=rater, assignment_id=assignment.id,
                  now=assignment.lease_expires_at + timedelta(seconds=1))
    other = make_user(db)
    assert next_assignment(db, rater=other) is not None  # the only place (overlap 1) is taken
    with pytest.raises(Conflict, match="taken every place"):
        undo_skip(db, rater=rater, assignment_id=assignment.id)
    assert db.get(Assignment, assignment.id).state == "skipped"


def test_history_lists_skips_with_their_note_and_an_undo_button(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["a", "b"], prompt="derm question")
    rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    missing = client.post("/rate/skip", headers=HX, data={**fields, "skip_reason": ""})
    assert missing.status_code == 422 and "Choose a reason for skipping" in missing.text
    assert 'data-field="skip_reason"' in missing.text
    client.post("/rate/skip", headers=HX, data={**fields, "skip_reason": "conflict", "skip_note": "my patient"})
    page = client.get("/history", headers=HTML).text
    assert "Skipped: Conflict of interest" in page and "my patient" in page and "derm question" in page
    assert re.search(r'<time datetime="[0-9T:.-]+\+00:00" data-local>', page)
    undo = re.search(r'action="(/history/skips/\d+/undo)"', page)
    assert undo is not None
    back = client.post(undo.group(1), data={"csrf_token": fields["csrf_token"]}, headers=HTML,
                       follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == "/rate"
    assert db.get(Assignment, int(fields["assignment_id"])).state == "leased"


def test_read_state_is_stored_in_display_order_and_optional(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    add_comparison(db, campaign, ["a", "b", "c"], prompt="first")
    add_comparison(db, campaign, ["d", "e", "f"], prompt="second")
    rater_logged_in(client, db)
    fields = form_of(client.get("/rate", headers=HTML).text)
    ranks = {"rank-0": "1", "rank-1": "2", "rank-2": "3"}
    read = {"read-0": "1", "read-1": "0", "read-2": "1"}
    nxt = client.post("/rate/submit", headers=HX, data={**fields, **ranks, **read})
    assert nxt.status_code == 200
    client.post("/rate/submit", headers=HX, data={**form_of(nxt.text), **ranks, "read-0": ""})
    first, second = db.query(Judgment).order_by(Judgment.id).all()
    assert first.read_to_end == [True, False, True] and second.read_to_end is None


def test_api_and_ranking_export_expose_skips_and_read_state(client: TestClient, db: Session) -> None:
    assignment, rater = _skipped(db, overlap=2)
    comparison = assignment.comparison
    judge = make_user(db)
    claimed = next_assignment(db, rater=judge)
    judgment = Judgment(comparison_id=comparison.id, rater_id=judge.id, assignment_id=claimed.id,
                        shown_order=claimed.display_order, ranks=[0, 1], flags={},
                        idempotency_key="read-state-key", read_to_end=[True, False])
    db.add(judgment)
    db.flush()
    _, token = make_token(db)
    skips = client.get("/api/v1/skips", headers=bearer(token)).json()["items"]
    assert [(s["id"], s["reason"], s["reason_label"], s["note"], s["rater"]) for s in skips] == [
        (assignment.id, "unclear", "Prompt unclear or incomplete", "no weight given", rater.pseudonym)]
    assert client.get(f"/api/v1/skips/{claimed.id}", headers=bearer(token)).status_code == 404
    assert client.get(f"/api/v1/judgments/{judgment.id}", headers=bearer(token)).json()["read_to_end"] == [True, False]
    query = ExportQuery(shape="ranking", include_skips=True)
    lines = [json.loads(line) for line in b"".join(export_bytes(db, query=query)).splitlines()]
    ranking, skip = (parse_record(lines[0]), SkipRecord.model_validate(lines[1]))
    assert isinstance(ranking, RankingRecord) and len(lines) == 2
    assert [r.read_to_end for r in ranking.responses] == [True, False]
    assert (skip.reason, skip.note, skip.comparison_id, skip.rater) == (
        "unclear", "no weight given", comparison.id, rater.pseudonym)
    with pytest.raises(Exception, match="JSONL"):
        ExportQuery(shape="ranking", format="parquet", include_skips=True)
    # An older file (no read_to_end) still loads.
    old = dict(lines[0])
    old["responses"] = [{k: v for k, v in r.items() if k != "read_to_end"} for r in old["responses"]]
    assert parse_record(old).responses[0].read_to_end is None


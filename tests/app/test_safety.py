"""Safety review: flagged responses, a lead's verdict (audited), and its mark in the export."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.models import AuditEvent, Comparison
from app.schemas.export import ExportQuery
from app.services.export import export_bytes
from app.services.safety import flagged_responses, pending_count, review_response
from tests.factories import make_campaign, make_comparisons, make_judgment, make_raters, make_user
from tests.web import HTML, admin_post, login
from trainer.data import records_to_comparisons
from trainer.schema import PairwiseRecord, RankingRecord


def _flagged(db: Session) -> tuple[Comparison, int, int]:
    """A 2-way comparison whose response B two raters flagged unsafe (and ranked last)."""
    campaign = make_campaign(db)
    comparison = make_comparisons(db, campaign)[0]
    good, bad = (item.response_id for item in comparison.items)
    for rater, why in zip(make_raters(db, 2), ("doubles the dose", "ignores red flags"), strict=True):
        judgment = make_judgment(db, comparison, rater, ranks=[0, 1], flags={str(bad): ["unsafe"]})
        judgment.rationale = why
    db.flush()
    return comparison, good, bad


def _export(db: Session, **options: object) -> list[dict[str, object]]:
    query = ExportQuery.model_validate(options)
    return [json.loads(line) for chunk in export_bytes(db, query=query) for line in chunk.decode().splitlines()]


def test_confirmed_unsafe_is_marked_in_every_export_shape(db: Session) -> None:
    comparison, good, bad = _flagged(db)
    [item] = flagged_responses(db)
    assert item.response.id == bad and [f.rationale for f in item.flags] == ["doubles the dose", "ignores red flags"]
    assert pending_count(db) == 1
    before = _export(db, campaign_id=comparison.campaign_id)
    assert all(not row["rejected_confirmed_unsafe"] for row in before)
    lead = make_user(db, role="admin")
    review_response(db, response_id=bad, verdict="confirmed", note="dose is 10x", reviewer=lead)
    assert pending_count(db) == 0 and flagged_responses(db, status="confirmed")
    pairs = _export(db, campaign_id=comparison.campaign_id)
    assert [(r["rejected_confirmed_unsafe"], r["chosen_confirmed_unsafe"]) for r in pairs] == [(True, False)] * 2
    [PairwiseRecord.model_validate(r) for r in pairs]
    rankings = _export(db, shape="ranking", campaign_id=comparison.campaign_id)
    marks = {resp["response_id"]: resp["confirmed_unsafe"] for resp in rankings[0]["responses"]}  # type: ignore[index]
    assert marks == {good: False, bad: True}
    RankingRecord.model_validate(rankings[0])
    [aggregated] = _export(db, shape="aggregated", campaign_id=comparison.campaign_id)
    assert {r["response_id"]: r["confirmed_unsafe"] for r in aggregated["responses"]} == marks  # type: ignore[index]
    parquet = b"".join(export_bytes(db, query=ExportQuery(format="parquet", campaign_id=comparison.campaign_id)))
    assert pq.read_table(io.BytesIO(parquet)).column("rejected_confirmed_unsafe").to_pylist() == [True, True]
    # Training reads the mark: the confirmed response is the comparison's unsafe one.
    [grouped] = records_to_comparisons([PairwiseRecord.model_validate(r) for r in pairs])
    assert grouped.unsafe[grouped.responses.index(pairs[0]["rejected"])] is True  # type: ignore[arg-type]
    # A later dismissal lifts the mark; both verdicts are in the audit log.
    review_response(db, response_id=bad, verdict="dismissed", note="on review, dose is right", reviewer=lead)
    assert not any(r["rejected_confirmed_unsafe"] for r in _export(db, campaign_id=comparison.campaign_id))
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "response",
                                                         AuditEvent.target_id == str(bad))).all()
    assert actions == ["safety.confirmed", "safety.dismissed"]


def test_old_export_files_still_load() -> None:
    old = {"prompt": "p", "chosen": "a", "rejected": "b", "chosen_flags": [], "rejected_flags": ["unsafe"]}
    assert PairwiseRecord.model_validate(old).rejected_confirmed_unsafe is False
    old_ranking = {"kind": "ranking", "comparison_id": 1, "prompt": "p", "ranks": [0, 1],
                   "responses": [{"text": "a"}, {"text": "b", "flags": ["unsafe"]}]}  # fmt: skip
    assert RankingRecord.model_validate(old_ranking).responses[1].confirmed_unsafe is False


def test_a_verdict_needs_a_note_and_a_flagged_response(db: Session) -> None:
    _, good, bad = _flagged(db)
    lead = make_user(db, role="admin")
    with pytest.raises(ValidationFailed, match="note"):
        review_response(db, response_id=bad, verdict="confirmed", note="  ", reviewer=lead)
    with pytest.raises(NotFound):
        review_response(db, response_id=good, verdict="confirmed", note="x", reviewer=lead)
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.startswith("safety."))) == 0


def test_the_review_page_lists_flags_and_records_the_verdict(client: TestClient, db: Session) -> None:
    _, _, bad = _flagged(db)
    lead = make_user(db, role="admin")
    login(client, lead.email)
    page = client.get("/admin/safety", headers=HTML).text
    assert "doubles the dose" in page and "ignores red flags" in page and f"Response {bad}" in page
    missing = admin_post(client, f"/admin/safety/{bad}", {"verdict": "confirmed", "note": ""})
    assert missing.status_code == 422 and 'id="note-error"' in missing.text
    done = admin_post(client, f"/admin/safety/{bad}", {"verdict": "confirmed", "note": "dose is 10x"})
    assert done.status_code == 303
    assert "dose is 10x" in client.get("/admin/safety?status=confirmed", headers=HTML).text

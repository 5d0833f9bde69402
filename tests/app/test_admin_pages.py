"""The admin console through HTTP: campaigns, invites, tokens, imports, export, audit."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ApiToken, AuditEvent, Campaign, Comparison, User
from tests.factories import (
    HH,
    make_campaign,
    make_comparisons,
    make_judgment,
    make_raters,
    make_user,
)
from tests.web import HTML, admin_post, csrf_of, login


@pytest.fixture
def admin(client: TestClient, db: Session) -> User:
    user = make_user(db, role="admin")
    login(client, user.email)
    return user


def _audited(db: Session, action: str) -> int:
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


def test_a_bad_campaign_form_names_each_field_and_saves_nothing(client: TestClient, db: Session, admin: User) -> None:
    before = db.scalar(select(func.count()).select_from(Campaign))
    bad = admin_post(client, "/admin/campaigns", {"name": " ", "overlap": "0", "gold_rate": "2",
                                             "lease_minutes": "abc", "guidelines_md": "x"})  # fmt: skip
    assert bad.status_code == 422
    for field in ("name", "overlap", "gold_rate", "lease_minutes"):
        assert f'id="{field}-error"' in bad.text, field
    assert db.scalar(select(func.count()).select_from(Campaign)) == before
    good = admin_post(client, "/admin/campaigns", {"name": "Cardiology", "overlap": "2", "gold_rate": "0.1",
                                              "flags": ["incomplete"], "rubric": "safety\naccuracy",
                                              "guidelines_md": "<script>x()</script> **Be safe**",
                                              "lease_minutes": "30", "status": "active"})  # fmt: skip
    assert good.status_code == 303
    campaign = db.scalar(select(Campaign).where(Campaign.name == "Cardiology"))
    assert campaign is not None and campaign.flags == ["unsafe", "factually_wrong", "incomplete"]
    assert campaign.rubric == ["safety", "accuracy"] and campaign.lease_minutes == 30
    page = client.get(good.headers["location"], headers=HTML).text
    assert "<strong>Be safe</strong>" in page and "<script>x()" not in page
    # An edit with one bad field changes nothing, not even the good fields.
    again = admin_post(client, f"/admin/campaigns/{campaign.id}", {"name": "Renamed", "overlap": "99"})
    assert again.status_code == 422 and 'id="overlap-error"' in again.text
    db.refresh(campaign)
    assert campaign.name == "Cardiology" and campaign.overlap == 2
    assert _audited(db, "campaign.create") >= 1


def test_invite_link_sets_a_password_once_then_the_rater_logs_in(client: TestClient, db: Session, admin: User) -> None:
    invited = admin_post(client, "/admin/raters", {"email": "New.Doc@Example.org", "display_name": "Dr New",
                                              "specialty": "cardiology", "role": "rater"})  # fmt: skip
    assert invited.status_code == 200
    link = re.search(r'id="invite-link">http://testserver(/invite/[^<]+)<', invited.text)
    assert link, invited.text[:500]
    user = db.scalar(select(User).where(User.email == "new.doc@example.org"))
    assert user is not None and user.specialty == "cardiology"
    assert login(client, user.email, "anything at all").status_code == 401  # no password yet
    token = csrf_of(client, link.group(1))
    short = client.post(link.group(1), data={"password": "short", "confirm": "short", "csrf_token": token}, headers=HTML)
    assert short.status_code == 422 and "at least 10" in short.text
    done = client.post(link.group(1), data={"password": "a fine password", "confirm": "a fine password",
                                            "csrf_token": token}, headers=HTML, follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    assert client.get(link.group(1), headers=HTML).status_code == 404  # used once
    assert login(client, user.email, "a fine password").status_code == 303
    assert _audited(db, "user.invite") == 1 and _audited(db, "user.accept_invite") == 1


def test_deactivate_reset_and_unlock_are_audited(client: TestClient, db: Session, admin: User) -> None:
    rater = make_user(db)
    assert admin_post(client, f"/admin/raters/{rater.id}/active", {"active": "0"}).status_code == 303
    assert rater.active is False
    reset = admin_post(client, f"/admin/raters/{rater.id}/reset", {})
    assert 'id="invite-link"' in reset.text
    assert admin_post(client, f"/admin/raters/{rater.id}/unlock", {}).status_code == 303
    for action in ("user.deactivate", "user.reset_password", "user.clear_lockout"):
        assert _audited(db, action) == 1
    assert client.get("/admin/raters", headers=HTML).status_code == 200
    audit = client.get("/admin/audit?action=user.&target_type=user", headers=HTML).text
    assert "user.deactivate" in audit and "user.clear_lockout" in audit
    assert "campaign.create" not in client.get("/admin/audit?action=user.", headers=HTML).text


def test_tokens_are_shown_once_listed_with_last_use_and_revoked(client: TestClient, db: Session, admin: User) -> None:
    made = admin_post(client, "/admin/tokens", {"name": "nightly", "scope": "read"})
    plaintext = re.search(r'id="new-token">(pfl_[^<]+)<', made.text)
    assert plaintext
    client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {plaintext.group(1)}"})
    listing = client.get("/admin/tokens", headers=HTML).text
    assert plaintext.group(1) not in listing and "never" not in listing.split("nightly")[1][:300]
    token = db.scalar(select(ApiToken).where(ApiToken.name == "nightly"))
    assert token is not None
    assert admin_post(client, f"/admin/tokens/{token.id}/revoke", {}).status_code == 303
    assert token.revoked_at is not None
    empty = admin_post(client, "/admin/tokens", {"name": ""})
    assert empty.status_code == 422 and 'id="name-error"' in empty.text


def test_upload_reports_every_bad_line_and_imports_the_real_format(client: TestClient, db: Session, admin: User) -> None:
    campaign = make_campaign(db)
    good = json.dumps({"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}]})
    bad = "\n".join([good, "{oops", good, json.dumps({"prompt": "p", "responses": []})]) + "\n"
    refused = admin_post(client, "/admin/imports", {"campaign_id": str(campaign.id), "format": "jsonl"},
                    files={"file": ("x.jsonl", bad.encode())})  # fmt: skip
    assert refused.status_code == 422 and 'id="import-problems"' in refused.text
    rows = re.findall(r'<td class="num">(\d+)</td><td>([^<]+)</td>', refused.text)
    assert [n for n, _ in rows] == ["2", "4"]
    with gzip.open(HH, "rb") as fh:
        head = b"".join(fh.readline() for _ in range(5))
    done = admin_post(client, "/admin/imports", {"campaign_id": str(campaign.id), "format": "hh-rlhf"},
                 files={"file": ("pairs.jsonl.gz", gzip.compress(head))})  # fmt: skip
    assert "imported 5 comparisons with 5 judgments by ext-hh-rlhf" in done.text
    again = admin_post(client, "/admin/imports", {"campaign_id": str(campaign.id), "format": "hh-rlhf"},
                  files={"file": ("pairs.jsonl", head)})  # fmt: skip
    assert "imported 0 comparisons; 5 already imported, skipped" in again.text
    csv_text = "external_id,prompt,response_1,response_2,context_specialty\nc1,Dose?,A,B,renal\n"
    made = admin_post(client, "/admin/imports", {"campaign_id": str(campaign.id), "format": "csv"},
                 files={"file": ("x.csv", csv_text.encode())})  # fmt: skip
    assert "imported 1 comparisons" in made.text
    n = db.scalar(select(func.count()).select_from(Comparison).where(Comparison.campaign_id == campaign.id))
    assert n == 6


def test_export_form_downloads_with_the_api_options(client: TestClient, db: Session, admin: User) -> None:
    campaign = make_campaign(db)
    comparison = make_comparisons(db, campaign)[0]
    make_judgment(db, comparison, make_raters(db, 1)[0], ranks=[0, 1])
    form = client.get("/admin/export", headers=HTML).text
    assert 'name="ties"' in form and 'name="min_agreement"' in form
    got = client.get(f"/admin/export/download?shape=pairwise&format=jsonl&campaign_id={campaign.id}&ties=drop&rater=")
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    row = json.loads(got.text.splitlines()[0])
    assert row["comparison_id"] == comparison.id and row["rejected_confirmed_unsafe"] is False
    bad = client.get("/admin/export/download?shape=ranking&style=conversational", headers=HTML)
    assert bad.status_code == 422 and 'id="style-error"' in bad.text

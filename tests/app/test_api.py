"""The REST API: token auth, lists with filters and cursors, reads, bulk create, rounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.models import Comparison, Prompt, TrainingRound
from app.services.tokens import revoke_token
from tests.factories import make_campaign, make_comparisons, make_judgment, make_token, make_user
from tests.web import bearer


def test_no_token_bad_token_and_revoked_token_are_401_json(client, db):
    token, plaintext = make_token(db)
    assert client.get("/api/v1/campaigns").status_code == 401
    bad = client.get("/api/v1/campaigns", headers=bearer("pfl_not-a-real-token"))
    assert bad.status_code == 401
    assert bad.json()["code"] == "unauthorized"
    assert bad.headers["www-authenticate"] == "Bearer"
    assert (
        client.get("/api/v1/campaigns", headers={"Authorization": "Basic eDp5"}).status_code == 401
    )
    assert client.get("/api/v1/campaigns", headers=bearer(plaintext)).status_code == 200
    revoke_token(db, token_id=token.id)
    revoked = client.get("/api/v1/campaigns", headers=bearer(plaintext))
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["message"]


def test_expired_token_and_demoted_owner_are_refused(client, db):
    token, plaintext = make_token(db)
    token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.flush()
    assert client.get("/api/v1/campaigns", headers=bearer(plaintext)).status_code == 401
    other, other_plain = make_token(db)
    other.user.role = "rater"
    db.flush()
    assert client.get("/api/v1/campaigns", headers=bearer(other_plain)).status_code == 401


def test_read_token_on_write_route_is_403_and_use_is_recorded(client, db):
    campaign = make_campaign(db)
    token, plaintext = make_token(db, scope="read")
    assert token.last_used_at is None
    response = client.post(
        "/api/v1/rounds", json={"campaign_id": campaign.id}, headers=bearer(plaintext)
    )
    assert response.status_code == 403
    assert response.json() == {
        "code": "forbidden",
        "message": "this API token is read-only; a write token is needed",
        "field": "scope",
    }
    db.refresh(token)
    assert token.last_used_at is not None


def test_a_web_session_cookie_does_not_authorise_the_api(client, db):
    make_token(db)
    client.cookies.set("session", "anything-a-browser-would-send")
    assert client.get("/api/v1/judgments").status_code == 401


def test_lists_page_with_an_opaque_cursor_to_the_end(client, db):
    campaign = make_campaign(db)
    made = make_comparisons(db, campaign, count=5)
    _, plaintext = make_token(db)
    seen, cursor = [], None
    while True:
        params = {"campaign_id": campaign.id, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/comparisons", params=params, headers=bearer(plaintext)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c.id for c in made]
    first = client.get(f"/api/v1/comparisons/{made[0].id}", headers=bearer(plaintext)).json()
    assert first["response_ids"] == [item.response_id for item in made[0].items]


def test_bad_cursor_unknown_parameter_big_page_and_huge_id_are_4xx_naming_the_field(client, db):
    _, plaintext = make_token(db)
    headers = bearer(plaintext)
    bad = client.get("/api/v1/prompts", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["field"] == "cursor"
    campaigns_cursor = "eyJyIjoiY2FtcGFpZ25zIiwiYWZ0ZXIiOjF9.forged"
    assert (
        client.get(
            "/api/v1/prompts", params={"cursor": campaigns_cursor}, headers=headers
        ).status_code
        == 400
    )
    unknown = client.get("/api/v1/prompts", params={"campain_id": 1}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "campain_id"
    assert "unknown parameter" in unknown.json()["message"]
    big = client.get("/api/v1/prompts", params={"limit": 501}, headers=headers)
    assert (big.status_code, big.json()["field"]) == (422, "limit")
    assert client.get("/api/v1/prompts/99999999999", headers=headers).status_code == 422
    missing = client.get("/api/v1/prompts/424242", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    naive = client.get(
        "/api/v1/judgments", params={"created_after": "2026-01-01T00:00:00"}, headers=headers
    )
    assert (naive.status_code, naive.json()["field"]) == (422, "created_after")
    assert client.get("/api/v1/nowhere", headers=headers).json()["code"] == "not_found"


def test_a_cursor_for_one_list_is_refused_by_another(client, db):
    campaign = make_campaign(db)
    make_comparisons(db, campaign, count=3)
    _, plaintext = make_token(db)
    page = client.get("/api/v1/prompts", params={"limit": 1}, headers=bearer(plaintext)).json()
    other = client.get(
        "/api/v1/responses", params={"cursor": page["next_cursor"]}, headers=bearer(plaintext)
    )
    assert (other.status_code, other.json()["code"]) == (400, "bad_cursor")


def test_judgments_filter_by_rater_date_and_show_only_live_by_default(client, db):
    campaign = make_campaign(db)
    comparison = make_comparisons(db, campaign)[0]
    alice, bob = make_user(db), make_user(db)
    old = make_judgment(db, comparison, alice, ranks=[0, 1])
    fixed = make_judgment(db, comparison, alice, ranks=[1, 0], supersedes=old)
    early = datetime(2020, 1, 1, tzinfo=UTC)
    bobs = make_judgment(db, comparison, bob, ranks=[0, 0], created_at=early)
    _, plaintext = make_token(db)

    def get(**p):
        return client.get(
            "/api/v1/judgments", params={"campaign_id": campaign.id, **p}, headers=bearer(plaintext)
        ).json()

    assert [j["id"] for j in get()["items"]] == [fixed.id, bobs.id]
    assert [j["id"] for j in get(include_superseded=True)["items"]] == [old.id, fixed.id, bobs.id]
    assert [j["id"] for j in get(rater=alice.pseudonym)["items"]] == [fixed.id]
    assert [j["id"] for j in get(created_before="2021-01-01T00:00:00Z")["items"]] == [bobs.id]
    row = get(rater=bob.pseudonym)["items"][0]
    assert row["rater"] == bob.pseudonym
    assert "rater_id" not in row and bob.email not in str(row)


def test_bulk_create_makes_comparisons_and_is_all_or_nothing(client, db):
    campaign = make_campaign(db)
    _, plaintext = make_token(db, scope="write")
    record = {
        "external_id": "x-1",
        "prompt": "Is it angina?",
        "responses": [{"text": "a"}, {"text": "b"}],
    }
    url = f"/api/v1/campaigns/{campaign.id}/comparisons"
    made = client.post(url, json={"records": [record], "seed": 1}, headers=bearer(plaintext))
    assert made.status_code == 201, made.text
    assert made.json()["created"] == 1

    def count():
        return db.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.campaign_id == campaign.id)
        )

    assert count() == 1
    again = {**record, "external_id": "x-2"}
    duplicate = client.post(url, json={"records": [again, record]}, headers=bearer(plaintext))
    assert duplicate.status_code == 422
    assert duplicate.json()["field"] == "external_id"
    one_response = {"prompt": "p", "responses": [{"text": "only"}]}
    invalid = client.post(url, json={"records": [again, one_response]}, headers=bearer(plaintext))
    assert (invalid.status_code, invalid.json()["field"]) == (422, "records.1.responses")
    nul = client.post(
        url, json={"records": [{**again, "prompt": "a\u0000b"}]}, headers=bearer(plaintext)
    )
    assert nul.status_code == 422
    assert count() == 1
    assert (
        client.post(
            "/api/v1/campaigns/999999/comparisons",
            json={"records": [again]},
            headers=bearer(plaintext),
        ).status_code
        == 404
    )


def test_queue_a_round_with_a_write_token(client, db):
    campaign = make_campaign(db)
    token, plaintext = make_token(db, scope="write")
    response = client.post(
        "/api/v1/rounds",
        json={"campaign_id": campaign.id, "method": "ppo", "config": {"responses_per_prompt": 4}},
        headers=bearer(plaintext),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["method"], body["config"]) == (
        "queued", "ppo", {"responses_per_prompt": 4})
    stored = db.get(TrainingRound, body["id"])
    assert stored is not None and stored.created_by_id == token.user_id
    listed = client.get(
        "/api/v1/rounds", params={"status": "queued"}, headers=bearer(plaintext)
    ).json()
    assert [r["id"] for r in listed["items"]] == [body["id"]]
    bad = client.post("/api/v1/rounds", json={"method": "sgd"}, headers=bearer(plaintext))
    assert (bad.status_code, bad.json()["field"]) == (422, "method")
    typo = client.post("/api/v1/rounds", json={"config": {"k": 4}}, headers=bearer(plaintext))
    assert (typo.status_code, typo.json()["field"]) == (422, "k")
    assert (
        client.post(
            "/api/v1/rounds", json={"campaign_id": 987654}, headers=bearer(plaintext)
        ).status_code
        == 404
    )


def test_every_resource_lists_and_reads(client, db):
    campaign = make_campaign(db)
    comparison = make_comparisons(db, campaign)[0]
    judgment = make_judgment(db, comparison, make_user(db))
    _, plaintext = make_token(db)
    ids = {
        "campaigns": campaign.id,
        "prompts": comparison.prompt_id,
        "responses": comparison.items[0].response_id,
        "comparisons": comparison.id,
        "judgments": judgment.id,
    }
    for resource, item_id in ids.items():
        listed = client.get(f"/api/v1/{resource}", headers=bearer(plaintext))
        assert listed.status_code == 200, (resource, listed.text)
        assert item_id in [row["id"] for row in listed.json()["items"]]
        assert (
            client.get(f"/api/v1/{resource}/{item_id}", headers=bearer(plaintext)).json()["id"]
            == item_id
        )
    for resource in ("rounds", "model-versions"):
        assert client.get(f"/api/v1/{resource}", headers=bearer(plaintext)).status_code == 200
    assert db.scalar(select(func.count()).select_from(Comparison)) >= 1


def test_openapi_documents_the_api_with_examples(client):
    schema = client.get("/openapi.json").json()
    assert "/api/v1/export" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "examples" in schema["components"]["schemas"]["JudgmentOut"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle-5.35.0.js").status_code == 200


def test_a_token_does_not_open_the_rater_pages(client, db):
    _, plaintext = make_token(db, scope="write")
    for page in ("/rate", "/history"):
        response = client.get(page, headers=bearer(plaintext), follow_redirects=False)
        assert response.status_code != 200, page

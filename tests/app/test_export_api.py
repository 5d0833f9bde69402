"""Export over HTTP and the CLI, against committed data (the real session, as in production)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from tests.factories import make_campaign, make_comparisons, make_judgment, make_token, make_user


@pytest.fixture
def seeded(committed_engine: Engine) -> Iterator[dict]:
    """Committed rows: a campaign of 4 comparisons, each judged by 2 raters, and a read token."""
    with Session(committed_engine, expire_on_commit=False) as db, db.begin():
        campaign = make_campaign(db)
        raters = [make_user(db), make_user(db)]
        for comparison in make_comparisons(db, campaign, count=4, k=3):
            for i, rater in enumerate(raters):
                make_judgment(
                    db, comparison, rater, ranks=[0, 1, 2] if i else [0, 2, 1], strength=2
                )
        token, plaintext = make_token(db)
        admin_email = token.user.email
    yield {"campaign": campaign, "token": plaintext, "admin": admin_email}


@pytest.fixture
def live_client(seeded) -> Iterator[TestClient]:
    """The app with its own sessions (no test override): streaming runs as in production."""
    from app.main import create_app

    with TestClient(create_app()) as client:
        yield client


def test_export_streams_jsonl_with_a_file_name(live_client, seeded):
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    params = {"campaign_id": seeded["campaign"].id, "expansion": "best_vs_rest"}
    with live_client.stream("GET", "/api/v1/export", params=params, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert "attachment; filename=" in response.headers["content-disposition"]
        rows = [json.loads(line) for line in response.iter_lines() if line]
    assert len(rows) == 4 * 2 * 2  # best-vs-rest of a strict 3-way order: 2 pairs a judgment
    assert {r["campaign"] for r in rows} == {seeded["campaign"].name}


def test_export_parquet_over_http(live_client, seeded):
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    params = {"shape": "aggregated", "format": "parquet"}
    response = live_client.get("/api/v1/export", params=params, headers=headers)
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.num_rows == 4 and set(table.column("n_raters").to_pylist()) == {2}


def test_export_refuses_bad_options_with_json(live_client, seeded):
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    cases = {
        (("shape", "ranking"), ("style", "conversational")): (422, "style"),
        (("ties", "maybe"),): (422, "ties"),
        (("min_agreement", "2"),): (422, "min_agreement"),
        (("campaign", "1"),): (422, "campaign"),
        (("campaign_id", "999999"),): (404, "campaign_id"),
    }
    for params, (status, field) in cases.items():
        response = live_client.get("/api/v1/export", params=dict(params), headers=headers)
        assert (response.status_code, response.json()["field"]) == (status, field), params
    assert live_client.get("/api/v1/export").status_code == 401


def test_cli_tokens_create_list_revoke(seeded):
    runner = CliRunner()
    made = runner.invoke(
        cli, ["tokens", "create", seeded["admin"], "--name", "ci", "--scope", "write"]
    )
    assert made.exit_code == 0, made.output
    plaintext = made.output.strip().splitlines()[-1]
    assert plaintext.startswith("pfl_")
    listed = runner.invoke(cli, ["tokens", "list"])
    assert plaintext[:10] in listed.output and plaintext not in listed.output
    token_id = made.output.split()[1]
    assert runner.invoke(cli, ["tokens", "revoke", token_id]).exit_code == 0
    assert "ci" not in runner.invoke(cli, ["tokens", "list"]).output.split("\t")
    assert "revoked" in runner.invoke(cli, ["tokens", "list", "--all"]).output


def test_cli_export_writes_the_same_file_as_the_api(live_client, seeded, tmp_path):
    out = tmp_path / "ranking.jsonl"
    campaign = seeded["campaign"]
    result = CliRunner().invoke(
        cli, ["export", "--shape", "ranking", "--campaign", campaign.name, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    api = live_client.get(
        "/api/v1/export", params={"shape": "ranking", "campaign_id": campaign.id}, headers=headers
    )
    assert out.read_bytes() == api.content
    bad = CliRunner().invoke(
        cli, ["export", "--shape", "ranking", "--min-agreement", "3", "-o", str(out)]
    )
    assert bad.exit_code != 0 and "min_agreement" in str(bad.exception)

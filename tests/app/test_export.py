"""The export: every shape matches trainer.schema, options filter as documented, formats agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.schemas.export import ExportQuery
from tests.factories import make_campaign, make_comparisons, make_judgment, make_user
from tests.support import export_rows
from trainer.schema import (
    AggregatedRecord,
    ConversationalPairwiseRecord,
    PairwiseRecord,
    RankingRecord,
    ResponseRecord,
    ranking_to_pairwise,
    written_fields,
)


@pytest.fixture
def judged(db):
    """A 3-way comparison ranked by two raters (one corrected), and a 2-way gold one."""
    campaign = make_campaign(db)
    three = make_comparisons(db, campaign, k=3)[0]
    gold = make_comparisons(db, campaign, k=2, gold=True)[0]
    alice, bob = make_user(db), make_user(db)
    a, b, c = (item.response_id for item in three.items)
    first = make_judgment(db, three, alice, shown_order=[a, b, c], ranks=[0, 1, 2], strength=2)
    fixed = make_judgment(
        db, three, alice, shown_order=[a, b, c], ranks=[0, 1, 1], strength=3,
        flags={str(c): ["unsafe"]}, supersedes=first,
    )  # fmt: skip
    bobs = make_judgment(db, three, bob, shown_order=[c, b, a], ranks=[2, 0, 1], strength=1)
    golds = make_judgment(db, gold, bob, ranks=[0, 1], strength=0)
    return {"campaign": campaign, "three": three, "gold": gold, "alice": alice, "bob": bob,
            "first": first, "fixed": fixed, "bobs": bobs, "golds": golds, "ids": (a, b, c)}  # fmt: skip


def test_pairwise_rows_are_trl_rows_and_match_the_schema_expansion(db, judged):
    for ties in ("drop", "keep"):
        for expansion in ("all", "best_vs_rest"):
            options = {"campaign_id": judged["campaign"].id, "ties": ties, "expansion": expansion}
            pairs = export_rows(db, shape="pairwise", **options)
            rankings = [
                RankingRecord.model_validate(r) for r in export_rows(db, shape="ranking", **options)
            ]
            expected = [
                p.model_dump()
                for r in rankings
                for p in ranking_to_pairwise(r, ties=ties, expansion=expansion)
            ]
            assert [PairwiseRecord.model_validate(p).model_dump() for p in pairs] == expected


def test_pairwise_content_margin_flags_and_live_only(db, judged):
    rows = export_rows(db, shape="pairwise", campaign_id=judged["campaign"].id, ties="keep")
    alice_rows = [r for r in rows if r["rater"] == judged["alice"].pseudonym]
    assert {r["judgment_id"] for r in alice_rows} == {judged["fixed"].id}  # the correction only
    a, b, c = judged["ids"]
    texts = {item.response_id: item.response.text for item in judged["three"].items}
    top = next(r for r in alice_rows if r["chosen"] == texts[a] and r["rejected"] == texts[b])
    assert (top["margin"], top["tie"]) == (3.0, False)
    tie = next(r for r in alice_rows if r["tie"])
    assert {tie["chosen"], tie["rejected"]} == {texts[b], texts[c]} and tie["margin"] == 0.0
    unsafe = next(r for r in alice_rows if r["rejected"] == texts[c] and not r["tie"])
    assert unsafe["rejected_flags"] == ["unsafe"]
    assert all(r["prompt"] == judged["three"].prompt.text for r in alice_rows)
    everything = export_rows(
        db, shape="pairwise", campaign_id=judged["campaign"].id, include_superseded=True
    )
    assert judged["first"].id in {r["judgment_id"] for r in everything}


def test_filters_gold_rater_dates_snapshot_and_round(db, judged):
    campaign = judged["campaign"].id

    def ids(**o):
        return {
            r["judgment_id"] for r in export_rows(db, shape="ranking", campaign_id=campaign, **o)
        }

    live = {judged["fixed"].id, judged["bobs"].id, judged["golds"].id}
    assert ids() == live
    assert ids(exclude_gold=True) == live - {judged["golds"].id}
    assert ids(rater=judged["alice"].pseudonym) == {judged["fixed"].id}
    assert ids(max_judgment_id=judged["bobs"].id) == {judged["fixed"].id, judged["bobs"].id}
    assert ids(created_before=datetime(2000, 1, 1, tzinfo=UTC)) == set()
    assert ids(created_after=datetime(2000, 1, 1, tzinfo=UTC)) == live
    other = make_campaign(db)
    assert export_rows(db, shape="ranking", campaign_id=other.id) == []


def test_ranking_rows_keep_display_order_and_validate(db, judged):
    rows = export_rows(
        db, shape="ranking", campaign_id=judged["campaign"].id, rater=judged["bob"].pseudonym
    )
    record = RankingRecord.model_validate(
        next(r for r in rows if r["judgment_id"] == judged["bobs"].id)
    )
    a, b, c = judged["ids"]
    assert [r.response_id for r in record.responses] == [c, b, a]
    assert record.ranks == [2, 0, 1] and record.rater == judged["bob"].pseudonym


def test_aggregated_pools_raters_into_consensus_agreement_and_bt(db, judged):
    rows = export_rows(db, shape="aggregated", campaign_id=judged["campaign"].id)
    by_id = {r["comparison_id"]: AggregatedRecord.model_validate(r) for r in rows}
    three = by_id[judged["three"].id]
    a, b, c = judged["ids"]
    assert [r.response_id for r in three.responses] == [a, b, c]
    # alice: a > b = c; bob: b > a > c. Mean ranks a 0.5, b 0.5, c 1.5: a and b tie.
    assert three.consensus_ranks == [0, 0, 1]
    # Only (a, c) is ordered alike by both: one pair of three.
    assert three.n_raters == 2 and three.agreement == pytest.approx(1 / 3)
    # a beats c twice, b beats c once and ties once: BT ranks a above b above c.
    assert three.bt_scores[0] > three.bt_scores[1] > three.bt_scores[2]
    assert three.responses[2].flags == ["unsafe"]
    assert by_id[judged["gold"].id].n_raters == 1 and by_id[judged["gold"].id].agreement is None


def test_min_agreement_keeps_only_agreed_comparisons(db, judged):
    agreed = make_comparisons(db, judged["campaign"])[0]
    for rater in (judged["alice"], judged["bob"]):
        make_judgment(db, agreed, rater, ranks=[0, 1])
    for shape in ("pairwise", "ranking", "aggregated"):
        rows = export_rows(db, shape=shape, campaign_id=judged["campaign"].id, min_agreement=0.9)
        assert {r["comparison_id"] for r in rows} == {agreed.id}, shape


def test_groups_survive_batch_boundaries(db, judged):
    small = export_rows(db, batch_rows=1, shape="aggregated", campaign_id=judged["campaign"].id)
    assert small == export_rows(db, shape="aggregated", campaign_id=judged["campaign"].id)


def test_conversational_pairs_are_message_lists(db, judged):
    rows = export_rows(
        db, shape="pairwise", style="conversational", campaign_id=judged["campaign"].id
    )
    record = ConversationalPairwiseRecord.model_validate(rows[0])
    assert record.prompt[0].role == "user" and record.chosen[0].role == "assistant"


@pytest.mark.parametrize(
    "options", [{"shape": "pairwise"}, {"shape": "pairwise", "style": "conversational"},
                {"shape": "ranking"}, {"shape": "aggregated"}],
)  # fmt: skip
def test_parquet_holds_the_same_rows_as_jsonl(db, judged, options):
    campaign = judged["campaign"].id
    jsonl = export_rows(db, campaign_id=campaign, **options)
    parquet = export_rows(db, campaign_id=campaign, format="parquet", **options)
    for row in parquet:
        if isinstance(row.get("created_at"), datetime):
            row["created_at"] = row["created_at"].isoformat()
    assert parquet == jsonl


@pytest.mark.parametrize(
    ("options", "model"),
    [({"shape": "pairwise"}, PairwiseRecord),
     ({"shape": "pairwise", "style": "conversational"}, ConversationalPairwiseRecord),
     ({"shape": "ranking"}, RankingRecord), ({"shape": "aggregated"}, AggregatedRecord)],
)  # fmt: skip
@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_each_shape_carries_its_records_fields_in_the_schemas_order(
    db, judged, options, model, file_format
):
    rows = export_rows(db, campaign_id=judged["campaign"].id, format=file_format, **options)
    assert rows and all(list(row) == written_fields(model) for row in rows)
    if model is not PairwiseRecord:
        responses = [r for row in rows for r in row.get("responses", ())]
        assert all(list(r) == written_fields(ResponseRecord) for r in responses)


def test_bad_option_combinations_are_refused(db):
    from app.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as style:
        ExportQuery(shape="ranking", style="conversational")
    assert style.value.field == "style"
    with pytest.raises(ValidationFailed):
        ExportQuery(shape="aggregated", include_superseded=True)


@given(
    texts=st.lists(st.text(), min_size=3, max_size=3),
    margin=st.sampled_from([0.0, 1.0, 2.0, 3.0]),
    tie=st.booleans(),
    round_id=st.one_of(st.none(), st.integers(1, 2**31)),
    flags=st.lists(st.sampled_from(["unsafe", "factually_wrong"]), max_size=2),
)
def test_fast_pairwise_lines_parse_to_the_same_rows(texts, margin, tie, round_id, flags):
    from app.services.export.writers import jsonl_chunks

    row = {
        "kind": "pairwise", "prompt": texts[0], "chosen": texts[1], "rejected": texts[2],
        "margin": margin, "tie": tie, "comparison_id": 1, "judgment_id": 2, "rater": "r-1",
        "campaign": 'a "quoted" campaign', "round": round_id, "is_gold": False, "weight": 1.0, "late": tie,
        "chosen_flags": flags, "rejected_flags": [],
        "chosen_confirmed_unsafe": False, "rejected_confirmed_unsafe": tie,
    }  # fmt: skip
    line = b"".join(jsonl_chunks([row]))
    assert json.loads(line) == row
    assert list(json.loads(line)) == written_fields(PairwiseRecord)
    assert set(row) == set(PairwiseRecord.model_fields)

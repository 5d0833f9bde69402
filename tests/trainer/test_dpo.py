"""DPO on the tiny policy: it widens the chosen-over-rejected margin; export records are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.config import DPOConfig
from trainer.dpo import read_pairs, train_dpo
from trainer.schema import RankingRecord, ResponseRecord

pytestmark = pytest.mark.usefixtures("torch_threads")

PROMPTS = [f"Patient {i}: what should I take for the fever?" for i in range(8)]


def test_dpo_raises_the_chosen_over_rejected_margin(tiny_policy_dir: Path, tmp_path: Path) -> None:
    pairs = [(p, "rest and water daily", "call emergency now", 1.0) for p in PROMPTS]
    config = DPOConfig(
        model=str(tiny_policy_dir), out=str(tmp_path), epochs=6, batch_size=4, lr=3e-3,
        beta=0.1, progress=False,
    )  # fmt: skip
    metrics = train_dpo(config, pairs=pairs)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and metrics["pairs"] == 8
    # Step 1 is measured before its update: policy == reference, so the margin is exactly 0.
    assert abs(rows[0]["reward_margin"]) < 1e-4
    assert rows[-1]["reward_margin"] > 1.0 and rows[-1]["reward_accuracy"] == 1.0
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert rows[-1]["chosen_logps"] > rows[0]["chosen_logps"]


def test_read_pairs_expands_rankings_and_drops_ties(tmp_path: Path) -> None:
    rec = RankingRecord(
        comparison_id=1, prompt="q",
        responses=[ResponseRecord(text=t) for t in ("best", "mid", "mid too")], ranks=[0, 1, 1],
    )  # fmt: skip
    path = tmp_path / "export.jsonl"
    path.write_text(
        rec.model_dump_json() + "\n" + json.dumps({"prompt": "q2", "chosen": "a", "rejected": "b"})
    )
    pairs = read_pairs(path)
    assert sorted(pairs) == [("q", "best", "mid", 1.0), ("q", "best", "mid too", 1.0),
                             ("q2", "a", "b", 1.0)]  # fmt: skip


def test_dpo_cli_on_an_export_file(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from trainer.__main__ import main

    rec = RankingRecord(
        comparison_id=1, prompt="fever?",
        responses=[ResponseRecord(text=t) for t in ("rest and water", "ignore it")], ranks=[0, 1],
    )  # fmt: skip
    data = tmp_path / "export.jsonl"
    data.write_text(rec.model_dump_json() + "\n")
    rc = main(["dpo", "--model", str(tiny_policy_dir), "--out", str(tmp_path / "run"),
               "--data", str(data), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["pairs"] == 1

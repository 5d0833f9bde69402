"""SFT on the tiny policy: the loss covers response tokens only, and it goes down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.config import SFTConfig
from trainer.policy import load_policy
from trainer.sft import read_sft_data, sft_batch, sft_loss, train_sft

pytestmark = pytest.mark.usefixtures("torch_threads")

EXAMPLES = [
    ("What should I take for a fever?", "rest and water, call the clinic if worse."),
    ("Is my blood pressure high?", "the test result is normal."),
    ("When do I take the antibiotic?", "take it daily with food for a week."),
    ("hi", "the nurse will call."),
]


def test_the_mask_covers_the_response_and_its_eos_not_the_prompt(tiny_policy_dir: Path) -> None:
    _, tok = load_policy(tiny_policy_dir)
    prompt_ids, prompt_mask, response_ids, response_mask = sft_batch(tok, EXAMPLES, SFTConfig())
    for i, (prompt, answer) in enumerate(EXAMPLES):
        target = response_ids[i][response_mask[i].bool()].tolist()
        assert target == tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seen = tok.decode(prompt_ids[i][prompt_mask[i].bool()])
        assert prompt in seen and answer not in seen


def test_sft_loss_equals_hf_cross_entropy_with_prompt_labels_masked(tiny_policy_dir: Path) -> None:
    model, tok = load_policy(tiny_policy_dir)
    batch = sft_batch(tok, EXAMPLES[:1], SFTConfig())
    ours = sft_loss(model.eval(), batch)
    ids = torch.cat([batch[0], batch[2]], 1)
    labels = ids.clone()
    labels[:, : batch[0].size(1)] = -100  # the prompt is context, never a target
    hf = model(input_ids=ids, labels=labels).loss
    assert torch.allclose(ours, hf, atol=1e-5)


def test_sft_lowers_the_response_loss(tiny_policy_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in EXAMPLES))
    config = SFTConfig(
        model=str(tiny_policy_dir), out=str(tmp_path / "run"), data=str(data), epochs=15,
        batch_size=4, lr=3e-3, progress=False,
    )  # fmt: skip
    metrics = train_sft(config)
    assert metrics["steps"] == 15
    assert metrics["last"]["loss"] < 0.6 * metrics["first"]["loss"]
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()


def test_read_sft_data_names_the_bad_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_sft_data(data)


def test_sft_cli(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from trainer.__main__ import main

    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "completion": r}) + "\n" for p, r in EXAMPLES))
    rc = main(["sft", "--model", str(tiny_policy_dir), "--out", str(tmp_path / "run"),
               "--data", str(data), "--batch-size", "2", "--no-progress"])  # fmt: skip
    assert rc == 0
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_gradient_checkpointing_gives_the_same_loss(tiny_policy_dir: Path) -> None:
    losses = []
    for checkpointing in (False, True):
        config = SFTConfig(model=str(tiny_policy_dir), epochs=2, batch_size=4, lr=1e-3,
                           gradient_checkpointing=checkpointing, progress=False)  # fmt: skip
        metrics = train_sft(config, EXAMPLES)
        losses.append((metrics["first"]["loss"], metrics["last"]["loss"]))
    assert abs(losses[0][0] - losses[1][0]) < 1e-5 and abs(losses[0][1] - losses[1][1]) < 1e-4

"""Our loss and accuracy equal TRL RewardTrainer.compute_loss's on the same model and pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.batching import collate
from trainer.config import RewardConfig
from trainer.data import Encoded, Pair
from trainer.losses import pairwise_accuracy
from trainer.reward import batch_loss, load_reward_model
from trainer.scoring import sequence_rewards

trl = pytest.importorskip("trl")

CHOSEN = [[101, 7592, 2088, 102], [101, 2307, 102], [101, 1045, 2066, 2023, 2172, 102]]
REJECTED = [[101, 2919, 102], [101, 2307, 2088, 2000, 102], [101, 2053, 102]]
MARGINS = [1.0, 0.0, 3.0]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_bert_dir: Path):  # type: ignore[no-untyped-def]
    model, tokenizer = load_reward_model(str(tiny_bert_dir))
    # Larger random weights than the init, so rewards differ by O(1) between sequences.
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        model.classifier.weight.normal_(0.0, 5.0)
    model.train()  # compute_loss picks its metrics bucket from the mode; dropout is off
    return model, tokenizer


def trl_loss_and_accuracy(model, tokenizer, tmp_path, *, margin: bool, center):  # type: ignore[no-untyped-def]
    from datasets import Dataset
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    rows = {"chosen_ids": CHOSEN, "rejected_ids": REJECTED}
    if margin:
        rows["margin"] = MARGINS
    args = TRLRewardConfig(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False,
        gradient_checkpointing=False, center_rewards_coefficient=center,
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer
    )
    examples = [{k: v[i] for k, v in rows.items()} for i in range(len(CHOSEN))]
    inputs = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(examples)
    loss = trainer.compute_loss(trainer.model, inputs)
    return loss.item(), trainer._metrics["train"]["accuracy"][-1]


def our_loss_and_accuracy(model, tokenizer, *, margin: bool, center):  # type: ignore[no-untyped-def]
    # TRL's row layout (all chosen, then all rejected) so the forward passes are bit-identical;
    # our per-comparison layout gives the same rewards up to float noise (tested below).
    pairs = [Pair(i, i + len(CHOSEN), margin=m if margin else 0.0) for i, m in enumerate(MARGINS)]
    encoded = [Encoded(CHOSEN + REJECTED, [False] * 6, pairs)]
    batch = collate(encoded, tokenizer.pad_token_id)
    rewards = sequence_rewards(model, batch["input_ids"], batch["attention_mask"])
    config = RewardConfig(margin=margin, center_coef=center)
    loss = batch_loss(rewards, batch, config)
    accuracy = pairwise_accuracy(rewards[batch["better"]], rewards[batch["worse"]])
    return loss.item(), accuracy.item()


@pytest.mark.parametrize(
    ("margin", "center"), [(False, None), (True, None), (False, 0.01), (True, 0.5)]
)
def test_loss_and_accuracy_match_trl_compute_loss(
    model_and_tokenizer, tmp_path: Path, margin: bool, center: float | None
) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = model_and_tokenizer
    with torch.no_grad():
        ours = our_loss_and_accuracy(model, tokenizer, margin=margin, center=center)
        theirs = trl_loss_and_accuracy(model, tokenizer, tmp_path, margin=margin, center=center)
    assert ours[0] == pytest.approx(theirs[0], abs=1e-6)
    assert ours[1] == pytest.approx(theirs[1], abs=1e-6)

    assert ours[1] == pytest.approx(2 / 3)  # a real batch: one pair is ranked wrongly


def test_per_comparison_layout_scores_like_trl_layout(model_and_tokenizer) -> None:  # type: ignore[no-untyped-def]
    model, tokenizer = model_and_tokenizer
    with torch.no_grad():
        per_comparison = sequence_rewards(model, *collate_pairs(tokenizer))
        flat = collate([Encoded(CHOSEN + REJECTED, [False] * 6, [])], tokenizer.pad_token_id)
        trl_layout = sequence_rewards(model, flat["input_ids"], flat["attention_mask"])
    assert per_comparison.std() > 0.1
    assert torch.allclose(per_comparison[0::2], trl_layout[:3], atol=1e-5)
    assert torch.allclose(per_comparison[1::2], trl_layout[3:], atol=1e-5)


def collate_pairs(tokenizer):  # type: ignore[no-untyped-def]
    batch = collate(
        [
            Encoded([c, r], [False, False], [Pair(0, 1)])
            for c, r in zip(CHOSEN, REJECTED, strict=True)
        ],
        tokenizer.pad_token_id,
    )
    return batch["input_ids"], batch["attention_mask"]

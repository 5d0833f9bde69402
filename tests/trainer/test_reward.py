"""Reward model training end to end on tiny models: scoring, learning, CLI, saved directory."""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import pytest
import torch

from tests.factories import FILLER, marker_rankings
from trainer import reward
from trainer.config import RewardConfig
from trainer.data import Comparison, data_hash, read_records, write_records
from trainer.schema import PairwiseRecord, RankingRecord
from trainer.scoring import sequence_rewards


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny models on a shared 2-core box: one thread avoids OpenMP threads waiting on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a subcommand through the parser that `register` builds, as `python -m trainer` does."""
    parser = argparse.ArgumentParser(prog="python -m trainer")
    reward.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_score_is_read_at_the_last_real_token_when_pad_equals_eos(tiny_llama_dir: Path) -> None:
    model, tok = reward.load_reward_model(str(tiny_llama_dir))
    eos = tok.eos_token_id
    model.config.pad_token_id = eos  # the checkpoint's own setting: pad == eos
    torch.manual_seed(0)
    torch.nn.init.normal_(model.score.weight, std=1.0)
    rows = [
        tok("short answer")["input_ids"] + [eos],
        tok("a much longer answer here")["input_ids"] + [eos],
    ]
    width = max(map(len, rows))
    ids = torch.tensor([r + [eos] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        ours = sequence_rewards(model, ids, mask)
        alone = [
            model.score(model.model(torch.tensor([r])).last_hidden_state)[0, -1, 0] for r in rows
        ]
        pooled_by_pad_id = model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
    assert torch.allclose(ours, torch.stack(alone), atol=1e-5)
    # transformers' own pooling stops before the final EOS (transformers#35352): a real difference.
    assert not torch.allclose(pooled_by_pad_id, ours, atol=1e-3)


def test_training_learns_a_held_out_ranking_and_reports_eval_metrics(tiny_bert_dir: Path) -> None:
    config = RewardConfig(
        model=str(tiny_bert_dir), out="", epochs=3, batch_size=8, lr=2e-3, max_length=32,
        progress=False,
    )  # fmt: skip
    metrics = reward.train_reward_model(
        config, records=marker_rankings(128, seed=0), eval_records=marker_rankings(24, 1, start=500)
    )
    assert metrics["eval_pairs"] == 24 * 6
    # Chance is 0.5; on 144 held-out pairs 0.7 is far outside what luck gives.
    assert metrics["eval_accuracy"] > 0.7, metrics
    assert metrics["eval_loss"] < metrics["history"][0]["eval_loss"] < 0.6932
    assert metrics["eval_gold_pairs"] == 5 * 6 and metrics["eval_gold_accuracy"] > 0.7
    assert metrics["eval_unsafe_responses"] == 24
    assert metrics["eval_mean_reward_unsafe"] < metrics["eval_mean_reward_other"]
    # K-way: one forward row per response, six pairs from every four rows.
    assert metrics["train_sequences_encoded"] == 128 * 4 * 3
    assert metrics["train_pairs_seen"] == 128 * 6 * 3


def long_marker_rankings(n: int, seed: int, *, start: int = 0) -> list[RankingRecord]:
    """`marker_rankings` behind a long shared passage, as a clinical question with context is."""
    rng = random.Random(seed)
    return [
        r.model_copy(update={"prompt": " ".join(rng.choices(FILLER, k=120)) + " " + r.prompt})
        for r in marker_rankings(n, seed, start=start)
    ]


def test_default_budget_learns_a_small_kway_set_at_full_length(tiny_bert_dir: Path) -> None:
    # 48 four-way judgments, prompts cut to fit: what a first campaign gives. With
    # no tuning the rewards must separate on held-out questions. A budget counted in comparisons
    # (8 four-way ones a step, one epoch: 6 Adam steps) left the loss at ln 2, accuracy or not.
    config = RewardConfig(model=str(tiny_bert_dir), out="", max_length=64, progress=False)
    metrics = reward.train_reward_model(
        config, records=long_marker_rankings(48, seed=0),
        eval_records=long_marker_rankings(32, 1, start=500),
    )  # fmt: skip
    assert metrics["eval_loss"] < math.log(2) - 0.05, metrics
    assert metrics["eval_accuracy"] > 0.7
    assert metrics["heldout_loss"] == metrics["eval_loss"]
    assert metrics["learned"] is True and metrics["not_learned_reason"] is None
    # The budget came from the data: four 4-way comparisons a batch would give 120 steps in the
    # most epochs, so batches of one (48 steps an epoch), several epochs.
    assert metrics["batch_size"] == 1 and metrics["epochs_run"] > 1
    # Early stopping keeps the best epoch's weights: the reported figures are that epoch's.
    best = metrics["history"][metrics["best_epoch"] - 1]
    assert metrics["heldout_loss"] == best["eval_loss"] == min(
        row["eval_loss"] for row in metrics["history"]
    )


def _comparisons(n: int, k: int) -> list[Comparison]:
    return [
        Comparison(key=str(i), prompt="q", responses=[f"r{j}" for j in range(k)]) for i in range(n)
    ]


def test_a_kway_batch_holds_as_many_responses_as_a_pairwise_one() -> None:
    # One four-way question a step (a batch of ~8 implied pairs) never fit FineGrainedRLHF's
    # training questions at 512 tokens; four a step did. Both shapes: 16 responses a batch.
    config = RewardConfig(model="m")
    assert reward.plan_budget(_comparisons(299, 4), config) == (4, 4)  # 75 steps an epoch
    assert reward.plan_budget(_comparisons(480, 2), config) == (8, 5)
    # Too few comparisons for min_steps in max_epochs: smaller batches, down to one.
    assert reward.plan_budget(_comparisons(100, 2), config) == (3, 9)
    assert reward.plan_budget(_comparisons(48, 4), config) == (1, 7)
    # What the user sets is kept.
    assert reward.plan_budget(_comparisons(299, 4), RewardConfig(model="m", batch_size=2)) == (2, 2)


def test_a_model_that_did_not_learn_says_so(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # lr 0: the rewards stay those of the fresh head, a coin flip on every held-out pair.
    out = tmp_path / "rm"
    config = RewardConfig(
        model=str(tiny_bert_dir), out=str(out), epochs=1, lr=0.0, max_length=32, progress=False
    )
    reward.train_reward_model(
        config, records=marker_rankings(16, seed=0), eval_records=marker_rankings(8, 1, start=500)
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["learned"] is False
    assert "not below ln 2" in saved["not_learned_reason"]
    assert abs(saved["heldout_loss"] - math.log(2)) < 1e-3
    assert 0 <= saved["length_baseline_accuracy"] <= 1 and 0 <= saved["heldout_accuracy"] <= 1


def test_no_heldout_split_is_no_verdict_of_learning(tiny_bert_dir: Path) -> None:
    config = RewardConfig(
        model=str(tiny_bert_dir), out="", epochs=1, max_length=32, eval_fraction=0.0,
        progress=False,
    )  # fmt: skip
    metrics = reward.train_reward_model(config, records=marker_rankings(8, seed=0))
    assert metrics["learned"] is False and "no held-out" in metrics["not_learned_reason"]
    assert metrics["heldout_loss"] is None and metrics["length_baseline_accuracy"] is None


def test_bf16_autocast_trains_and_saves_fp32_weights(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # The autocast CUDA runs, here on the CPU; held-out scoring must stay fp32 (bf16 rewards tie).
    from safetensors.torch import load_file

    config = RewardConfig(
        model=str(tiny_bert_dir), out=str(tmp_path / "rm"), epochs=3, batch_size=8, lr=2e-3,
        max_length=32, bf16=True, progress=False,
    )  # fmt: skip
    metrics = reward.train_reward_model(
        config, records=marker_rankings(128, seed=0), eval_records=marker_rankings(24, 1, start=500)
    )
    assert metrics["eval_accuracy"] > 0.7, metrics
    saved = load_file(tmp_path / "rm" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}


def test_score_bias_stays_put_unless_centering_gives_it_a_gradient(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    start = reward.load_reward_model(str(tiny_bert_dir))[0].classifier.bias.detach().clone()
    biases = {}
    for center in (None, 0.1):
        out = tmp_path / f"center-{center}"
        config = RewardConfig(
            model=str(tiny_bert_dir), out=str(out), epochs=1, batch_size=4, lr=1e-2,
            max_length=32, center_coef=center, progress=False,
        )  # fmt: skip
        reward.train_reward_model(config, records=marker_rankings(16, seed=7))
        biases[center] = load_file(out / "model.safetensors")["classifier.bias"]
    # A loss of differences cannot see the bias: it must not drift with Adam's noise.
    assert torch.equal(biases[None], start)
    # Centering penalises the absolute level, so there the bias is a real parameter.
    assert not torch.allclose(biases[0.1], start, atol=1e-4)


def test_cli_trains_saves_a_loadable_model_and_reward_eval_prints_json(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    data, held = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_records(marker_rankings(24, seed=2), data)
    rows = [
        json.dumps({"prompt": f"q{i}: ", "chosen": "good", "rejected": "awful"}) for i in range(3)
    ]
    tied = PairwiseRecord(prompt="q: ", chosen="fine", rejected="okay", tie=True)
    held.write_text("\n".join([*rows, tied.model_dump_json()]))
    out = tmp_path / "rm"
    printed = cli(
        ["reward", "--data", str(data), "--model", str(tiny_bert_dir), "--out", str(out),
         "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--max-length", "24", "--seed", "3",
         "--eval-data", str(held), "--margin", "--center-coef", "0.01", "--ties", "equal",
         "--grad-accum", "2", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert '"epoch": 1' in printed
    metrics = json.loads((out / "metrics.json").read_text())
    # The verdict a training round reads (CONTRACTS.md #1), also in the printed summary line.
    verdict = {"learned", "not_learned_reason", "heldout_loss", "heldout_accuracy"}
    verdict |= {"length_baseline_accuracy"}
    summary = json.loads(printed.strip().splitlines()[-1])
    assert verdict <= set(metrics) and verdict <= set(summary)
    assert isinstance(metrics["learned"], bool) and summary["learned"] == metrics["learned"]
    assert metrics["eval_pairs"] == 3 and metrics["train_comparisons"] == 24
    assert metrics["eval_tie_pairs"] == 1 and metrics["eval_tie_mean_abs_diff"] >= 0
    meta = json.loads((out / reward.META_FILE).read_text())
    assert meta["train_data_sha256"] == data_hash(read_records(data))
    assert meta["config"]["margin"] is True and meta["config"]["grad_accum"] == 2
    saved = reward.saved_reward_config(out)
    assert (saved.max_length, saved.append_eos, saved.ties) == (24, True, "equal")
    # One row per optimizer step in metrics.jsonl, as the policy trainers write it.
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == metrics["optimizer_steps"] > 1
    assert [row["step"] for row in steps] == list(range(1, len(steps) + 1))
    assert all(row["epoch"] == 1 and row["loss"] > 0 and row["lr"] >= 0 for row in steps)
    assert (out / "model.safetensors").exists()

    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert loaded.config.num_labels == 1
    before = load_file(tiny_bert_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    # Every encoder tensor was trained (the classifier head is new).
    unchanged = [
        k
        for k, v in before.items()
        if torch.equal(v, after[k.removeprefix("bert.")] if k in after else after["bert." + k])
    ]
    assert unchanged == []

    last = (
        cli(["reward-eval", "--model", str(out), "--data", str(held)], capsys)
        .strip()
        .splitlines()[-1]
    )
    result = json.loads(last)
    assert result["pairs"] == 3 and result["tie_pairs"] == 1
    assert result["accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0) and result["loss"] > 0


def test_lora_and_gradient_checkpointing_on_a_causal_lm(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "lora-rm"
    config = RewardConfig(
        model=str(tiny_llama_dir), out=str(out), epochs=1, batch_size=4, lr=1e-3, max_length=32,
        lora=True, lora_r=4, gradient_checkpointing=True, progress=False,
    )  # fmt: skip
    metrics = reward.train_reward_model(config, records=marker_rankings(16, seed=4))
    assert metrics["train_pairs_seen"] > 0 and metrics["eval_pairs"] > 0
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert not any("lora" in name for name, _ in loaded.named_parameters())
    # The saved pad differs from EOS, so transformers' own pooling reads the same token as ours.
    saved_tok = AutoTokenizer.from_pretrained(out)
    assert saved_tok.pad_token_id != saved_tok.eos_token_id == loaded.config.eos_token_id
    batch = saved_tok(["yes it is<|im_end|>", "no<|im_end|>"], padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = loaded(**batch).logits.squeeze(-1)
        ours = sequence_rewards(loaded, batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(pooled, ours, atol=1e-6)


def test_a_saved_model_is_read_with_the_encoding_it_was_trained_with(tmp_path: Path) -> None:
    from trainer.reward import META_FILE, saved_encoding

    # Saved before truncation_head existed: trained with texts cut from the left.
    assert saved_encoding(tmp_path) == {"append_eos": True, "truncation_head": 0.0}
    meta = {"config": {"append_eos": False, "truncation_head": 0.25}}
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    assert saved_encoding(tmp_path) == {"append_eos": False, "truncation_head": 0.25}

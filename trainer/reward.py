"""Reward models from physicians' rankings: Bradley-Terry over all implied pairs, K-way aware.

`train_reward_model(config, records=...)` is what the worker calls; `python -m trainer reward` and
`python -m trainer reward-eval` wrap it. The loop runs under Hugging Face Accelerate, so the same
code runs on a CPU, one GPU, or several processes under `accelerate launch` or `torchrun`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from trainer.batching import ShuffledBatches, collate
from trainer.cli import dataclass_from_namespace, dataclass_to_arguments
from trainer.config import RewardConfig, RewardEvalConfig
from trainer.data import (
    Comparison,
    Record,
    data_hash,
    encode_comparisons,
    read_records,
    records_to_comparisons,
    split_by_prompt,
)
from trainer.launch import make_accelerator
from trainer.losses import ranking_pairs_loss
from trainer.rl import MetricsLog
from trainer.scoring import (
    chunked_rewards,
    evaluate,
    learned_verdict,
    length_baseline_accuracy,
    resolve_forward_cost,
)

META_FILE = "prefloop_reward.json"


def load_reward_model(path: str, config: RewardConfig | None = None) -> tuple[Any, Any]:
    """A scalar-head sequence classifier and its tokenizer (pad falls back to EOS)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = config or RewardConfig()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.model_max_length = int(1e9)  # we truncate ourselves (encode_comparisons)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # transformers pools decoder classifiers at the last token that is not the pad id; a pad
        # distinct from EOS (the unknown token, where there is one) keeps the saved model right
        # for anyone who loads it. Our own scoring reads the attention mask either way.
        spare = tokenizer.unk_token if tokenizer.unk_token != tokenizer.eos_token else None
        tokenizer.pad_token = spare or tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    if config.disable_dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            task_type="SEQ_CLS",
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
        )
        model = get_peft_model(model, lora)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
    return model, tokenizer


def freeze_score_bias(model: torch.nn.Module) -> None:
    """Keep the score head's bias where it starts when the loss only sees reward differences.

    It cancels in every r_better - r_worse, so its gradient is rounding noise, which Adam scales
    up to full steps: left free, it random-walks the absolute rewards the policy trainers read.
    """
    for m in model.modules():  # the head: the one linear layer with a single output (peft: 2 copies)
        if isinstance(m, torch.nn.Linear) and m.out_features == 1 and m.bias is not None:
            m.bias.requires_grad_(False)


def batch_loss(rewards: torch.Tensor, batch: dict[str, torch.Tensor], config: RewardConfig) -> Any:
    """The training loss of one collated batch under `config` (margin, ties, centering, weights)."""
    return ranking_pairs_loss(
        rewards,
        batch["better"],
        batch["worse"],
        tie=batch["tie"] if bool(batch["tie"].any()) else None,
        margin=batch["margin"] if config.margin else None,
        weights=batch["weight"],
        center_coef=config.center_coef,
    )


def _comparisons(records: Sequence[Record], config: RewardConfig) -> list[Comparison]:
    return records_to_comparisons(
        records,
        ties=config.ties,
        expansion=config.expansion,
        margin_scale=config.margin_scale if config.margin else None,
        rater_weights=config.rater_weights,
    )


def _default_batch(comparisons: Sequence[Comparison], config: RewardConfig, processes: int) -> int:
    """Comparisons a default micro-batch holds: as many responses as `pairs_per_batch` pairs.

    Counted in implied pairs instead, a step held one four-way question, and on FineGrainedRLHF
    at 512 tokens the loss stayed at ln 2 on the training questions themselves (598 steps); four
    questions a step fit them in 146. Data too small for `min_steps` steps in `max_epochs` gets
    smaller batches, down to one comparison.
    """
    responses = sum(len(c.responses) for c in comparisons) / max(len(comparisons), 1)
    batch = round(2 * config.pairs_per_batch / max(responses, 2.0))
    steps_per_epoch = math.ceil(config.min_steps / config.max_epochs)
    fits = len(comparisons) // (steps_per_epoch * processes * config.grad_accum)
    return max(1, min(batch, fits))


def plan_budget(
    comparisons: Sequence[Comparison], config: RewardConfig, processes: int = 1
) -> tuple[int, int]:
    """Comparisons per micro-batch and planned epochs, from the data size where not configured.

    The epochs are as many as `min_steps` optimizer steps need, at most `max_epochs`.
    """
    batch = config.batch_size or _default_batch(comparisons, config, processes)
    if config.epochs is not None:
        return batch, config.epochs
    batches = math.ceil(len(comparisons) / batch)
    steps = math.ceil(math.ceil(batches / processes) / config.grad_accum)
    return batch, max(1, min(config.max_epochs, math.ceil(config.min_steps / max(steps, 1))))


def train_reward_model(
    config: RewardConfig,
    records: Sequence[Record] | None = None,
    eval_records: Sequence[Record] | None = None,
) -> dict[str, Any]:
    """Fit a reward model on `records` (or `config.data`), evaluate, save to `config.out`."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    # bf16 autocast is ours, around the training forward only: held-out scores stay fp32, as
    # every reader of the saved model computes them (bf16 rewards tie on close pairs).
    accelerator = make_accelerator(gradient_accumulation_steps=config.grad_accum)
    set_seed(config.seed)

    # 1. Data: comparisons, a held-out split by prompt, tokens.
    records = list(records) if records is not None else read_records(config.data or "")
    if eval_records is None and config.eval_data:
        eval_records = read_records(config.eval_data)
    train_c = _comparisons(records, config)
    if eval_records is not None:
        eval_c = _comparisons(eval_records, config)
    else:
        train_c, eval_c = split_by_prompt(train_c, config.eval_fraction, config.seed)
    if not train_c:
        raise ValueError("no training pairs: every record was a tie, unrankable, or held out")
    model, tokenizer = load_reward_model(config.model, config)
    if not config.center_coef:
        freeze_score_bias(model)
    encode = partial(
        encode_comparisons, tokenizer=tokenizer, max_length=config.max_length,
        append_eos=config.append_eos, truncation_head=config.truncation_head,
    )  # fmt: skip
    train_e, eval_e = encode(train_c), encode(eval_c)
    pad_id = tokenizer.pad_token_id
    batch_size, epochs = plan_budget(train_c, config, accelerator.num_processes)
    sampler = ShuffledBatches(
        [e.width for e in train_e], batch_size, seed=config.seed,
        group_by_length=config.group_by_length,
    )  # fmt: skip
    loader = DataLoader(train_e, batch_sampler=sampler, collate_fn=partial(collate, pad_id=pad_id))

    # 2. Optimizer and a linear schedule counted in optimizer steps of one process.
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused AdamW (one kernel for all tensors): also what transformers' Trainer defaults to.
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    total_steps = math.ceil(len(loader) / config.grad_accum) * epochs
    scheduler = get_scheduler(
        "linear", optimizer, round(config.warmup_ratio * total_steps), total_steps
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    forward_cost = resolve_forward_cost(config.forward_cost, accelerator.device)
    device_type = accelerator.device.type

    # 3. Train: one forward per distinct response, the loss over every pair it is in.
    history, n_pairs, n_rows, eval_seconds, eval_cpu = [], 0, 0, 0.0, 0.0
    steps_log = MetricsLog(config.out if accelerator.is_main_process else None)  # metrics.jsonl
    best: dict[str, Any] = {"loss": math.inf, "epoch": 0, "state": None}
    t0, cpu0 = time.perf_counter(), time.process_time()
    bar = tqdm(
        total=len(loader) * epochs, desc="reward",
        disable=not (config.progress and accelerator.is_main_process),
    )  # fmt: skip
    for epoch in range(1, epochs + 1):
        model.train()
        run_loss = run_correct = run_pairs = 0.0
        for batch in loader:
            with accelerator.accumulate(model):
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=config.bf16):
                    rewards = chunked_rewards(
                        model, batch["input_ids"], batch["attention_mask"],
                        forward_cost=forward_cost,
                    ).float()  # fmt: skip
                loss = batch_loss(rewards, batch, config)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                strict = ~batch["tie"]
                diff = (rewards[batch["better"]] - rewards[batch["worse"]])[strict]
                run_correct += (diff > 0).sum().item()
                run_pairs += strict.sum().item()
                loss_value = loss.item()
                run_loss += loss_value * strict.sum().item()
            if accelerator.sync_gradients:  # one row per optimizer step, as the policy trainers
                lr = scheduler.get_last_lr()[0]
                steps_log.log(len(steps_log.steps) + 1, {"epoch": epoch, "loss": loss_value, "lr": lr})
            n_pairs += len(batch["better"])
            n_rows += len(batch["input_ids"])
            bar.update(1)
            bar.set_postfix(
                loss=f"{run_loss / max(run_pairs, 1):.4f}",
                acc=f"{run_correct / max(run_pairs, 1):.3f}",
            )
        # The unwrapped model: an eval forward through DDP would sync buffers across ranks.
        t_eval, cpu_eval = time.perf_counter(), time.process_time()
        ev = evaluate(
            accelerator.unwrap_model(model), eval_e, pad_id=pad_id,
            batch_size=config.eval_batch_size, forward_cost=forward_cost,
            accelerator=accelerator,
        )  # fmt: skip
        eval_seconds += time.perf_counter() - t_eval
        eval_cpu += time.process_time() - cpu_eval
        row = {
            "epoch": epoch,
            "train_loss": run_loss / max(run_pairs, 1),
            "train_accuracy": run_correct / max(run_pairs, 1),
            **{f"eval_{k}": v for k, v in ev.items()},
        }
        history.append(row)
        if accelerator.is_main_process:
            bar.write(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            )
        # Early stopping on the held-out loss (every rank evaluated the same reduced sums, so all
        # agree); the best epoch's weights are kept on the CPU and restored at the end.
        if ev["loss"] is None or config.epochs is not None or config.patience <= 0:
            continue  # an explicit --epochs N trains N epochs and keeps the last
        if ev["loss"] < best["loss"]:
            state = accelerator.unwrap_model(model).state_dict()
            best = {"loss": ev["loss"], "epoch": epoch, "state": {
                k: v.detach().to("cpu", copy=True) for k, v in state.items()
            }}  # fmt: skip
        elif epoch - best["epoch"] >= config.patience:
            break
    bar.close()
    if best["state"] is not None and best["epoch"] != len(history):
        accelerator.unwrap_model(model).load_state_dict(best["state"])
    final = history[best["epoch"] - 1] if best["epoch"] else history[-1]
    length_baseline = length_baseline_accuracy(train_c, eval_c)
    learned, reason = learned_verdict(final["eval_loss"], final["eval_accuracy"], length_baseline)
    seconds = time.perf_counter() - t0 - eval_seconds  # training time only
    # CPU time of this process: on a shared machine, less at the mercy of other jobs than wall time.
    cpu_seconds = time.process_time() - cpu0 - eval_cpu

    # 4. Save: merged weights (safetensors), tokenizer, config, data hashes, metrics.
    metrics = {
        # The verdict a training round reads (CONTRACTS.md #1): on the weights that are saved.
        "learned": learned,
        "not_learned_reason": reason,
        "heldout_loss": final["eval_loss"],
        "heldout_accuracy": final["eval_accuracy"],
        "length_baseline_accuracy": length_baseline,
        **final,
        "epochs_run": len(history),
        "best_epoch": final["epoch"],
        "batch_size": batch_size,
        "optimizer_steps": math.ceil(len(loader) / config.grad_accum) * len(history),
        "history": history,
        "train_comparisons": len(train_c),
        "eval_comparisons": len(eval_c),
        "train_pairs_seen": n_pairs * accelerator.num_processes,
        "train_sequences_encoded": n_rows * accelerator.num_processes,
        "train_seconds": seconds,
        "train_pairs_per_second": n_pairs * accelerator.num_processes / seconds,
        "train_cpu_seconds": cpu_seconds,
        # The held-out passes early stopping needs, left out of the two figures above.
        "epoch_eval_seconds": eval_seconds,
        "epoch_eval_cpu_seconds": eval_cpu,
        "processes": accelerator.num_processes,
    }
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and config.out:
        model = accelerator.unwrap_model(model)
        data_info = {"train_data_sha256": data_hash(records)}
        if eval_records is not None:
            data_info["eval_data_sha256"] = data_hash(eval_records)
        save_reward_model(
            model, tokenizer, config.out, config=config, metrics=metrics, data=data_info
        )
    return metrics


def save_reward_model(
    model: Any, tokenizer: Any, out: str, *, config: RewardConfig, metrics: dict[str, Any],
    data: dict[str, str],
) -> None:  # fmt: skip
    """save_pretrained (LoRA merged) + tokenizer + training config, data hash and metrics."""
    import transformers

    if hasattr(model, "merge_and_unload"):  # LoRA: ship plain weights any loader understands
        model = model.merge_and_unload()
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    meta = {
        "kind": "reward_model",
        "config": dataclasses.asdict(config),
        **data,
        "pad_equals_eos": tokenizer.pad_token_id == tokenizer.eos_token_id,
        "score_position": "last token with attention_mask == 1",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


# Settings added after some models were saved, with what those older models were trained with.
_BEFORE_THE_SETTING = {"truncation_head": 0.0}  # cut from the left


def saved_reward_config(model_dir: str | Path) -> RewardConfig:
    """The settings a saved reward model was trained with (EOS appended or not, max length ...),
    read from its META_FILE; for a setting the file lacks, what models saved before it existed
    did (`_BEFORE_THE_SETTING`), else the default."""
    meta = Path(model_dir) / META_FILE
    saved = json.loads(meta.read_text()).get("config", {}) if meta.exists() else {}
    known = {f.name for f in dataclasses.fields(RewardConfig)}
    return RewardConfig(**{**_BEFORE_THE_SETTING, **{k: v for k, v in saved.items() if k in known}})


def saved_encoding(model_dir: str | Path) -> dict[str, Any]:
    """How a saved reward model's texts were tokenized, for `encode_comparisons` to repeat."""
    config = saved_reward_config(model_dir)
    return {"append_eos": config.append_eos, "truncation_head": config.truncation_head}


def evaluate_saved(
    model_dir: str, data: str, *, max_length: int = 512, batch_size: int = 8
) -> dict[str, Any]:
    """Score a JSONL file with a saved reward model: accuracy, loss and pair counts."""
    config = RewardConfig(ties="equal")
    model, tokenizer = load_reward_model(model_dir, config)
    comps = _comparisons(read_records(data), config)
    enc = encode_comparisons(
        comps, tokenizer, max_length=max_length, **saved_encoding(Path(model_dir))
    )
    return evaluate(model, enc, pad_id=tokenizer.pad_token_id, batch_size=batch_size)


def _run_reward(args: argparse.Namespace) -> int:
    metrics = train_reward_model(dataclass_from_namespace(RewardConfig, args))
    keep = ("learned", "not_learned_reason", "heldout_accuracy", "heldout_loss")
    keep += ("length_baseline_accuracy", "eval_pairs", "epochs_run", "optimizer_steps")
    keep += ("train_pairs_per_second",)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary line, not one per process
        if not metrics["learned"]:
            print(f"reward model did not learn: {metrics['not_learned_reason']}", file=sys.stderr)
        print(json.dumps({k: metrics.get(k) for k in keep}))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    config = dataclass_from_namespace(RewardEvalConfig, args)
    result = evaluate_saved(
        config.model, config.data, max_length=config.max_length, batch_size=config.batch_size
    )
    print(json.dumps(result))
    return 0


def register(subparsers: Any) -> None:
    """Add the `reward` and `reward-eval` subcommands."""
    train = subparsers.add_parser(
        "reward", help="Train a Bradley-Terry reward model.", description=__doc__
    )
    dataclass_to_arguments(train, RewardConfig, required=("model", "out", "data"))
    train.set_defaults(func=_run_reward)
    ev = subparsers.add_parser("reward-eval", help="Score a preference file with a reward model.")
    dataclass_to_arguments(ev, RewardEvalConfig, required=("model", "data"))
    ev.set_defaults(func=_run_eval)

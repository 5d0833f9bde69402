"""SFT: supervised fine-tuning on (prompt, ideal response) pairs, the loss on response tokens only.

The ideal responses are physicians' corrected or written answers. Prompt tokens are context, not
targets: the model reads them but is not trained to produce them (that would teach it to write
questions). The prompt goes through the chat template exactly as at generation time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trainer.config import SFTConfig
from trainer.losses import masked_mean
from trainer.policy import encode_prompts, encode_responses, policy_forward
from trainer.rl import TrainingDiverged, add_command, setup_policy

Example = tuple[str, str]  # (prompt, ideal response)


def read_sft_data(path: str | Path) -> list[Example]:
    """(prompt, response) pairs from JSONL rows with `prompt` and `response` (or `completion`)."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        answer = row.get("response", row.get("completion"))
        if not isinstance(row.get("prompt"), str) or not isinstance(answer, str) or not answer:
            raise ValueError(f"{path}:{n}: need string fields 'prompt' and 'response'")
        out.append((row["prompt"], answer))
    return out


def sft_batch(
    tokenizer: Any, examples: list[Example], config: SFTConfig
) -> tuple[torch.Tensor, ...]:
    """(prompt ids, prompt mask, response ids, response mask); only the response is a target."""
    prompt_ids, prompt_mask = encode_prompts(
        tokenizer, [p for p, _ in examples], chat_template=config.chat_template,
        max_tokens=config.max_prompt_tokens,
    )  # fmt: skip
    budget = max(1, config.max_length - prompt_ids.size(1))
    response_ids, response_mask = encode_responses(
        tokenizer, [r for _, r in examples], max_tokens=budget
    )
    return prompt_ids, prompt_mask, response_ids, response_mask


def sft_loss(model: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens (and their EOS), prompt masked."""
    logps, _, _ = policy_forward(model, *batch)
    return -masked_mean(logps, batch[3])


def train_sft(config: SFTConfig, examples: list[Example] | None = None) -> dict[str, Any]:
    """Fine-tune the policy on (prompt, response) pairs; save it and return the run's metrics."""
    examples = examples or read_sft_data(config.data)
    run = setup_policy(config, with_ref=False)
    acc, model, tok, opt = run.accelerator, run.model, run.tokenizer, run.optimizer
    log, rng = run.metrics_log(config.out), random.Random(config.seed)  # same order everywhere
    n_batches = -(-len(run.shard(examples)) // config.batch_size)
    bar = tqdm(total=config.epochs * n_batches, desc="sft", disable=not config.progress)
    step = 0
    for epoch in range(config.epochs):
        order = list(examples)
        rng.shuffle(order)
        order = run.shard(order)
        for start in range(0, len(order), config.batch_size):
            examples_batch = order[start : start + config.batch_size]
            batch = tuple(t.to(acc.device) for t in sft_batch(tok, examples_batch, config))
            with acc.autocast():
                loss = sft_loss(model, batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite SFT loss at step {step}; stopping before saving"
                )
            acc.backward(loss)
            grad_norm = acc.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            log.log(step, {"loss": loss.item(), "epoch": epoch, "grad_norm": float(grad_norm),
                           "response_tokens": batch[3].sum().item()})  # fmt: skip
            step += 1
            bar.update()
    bar.close()
    path = run.save(config)
    return log.finish(method="sft", policy_path=str(path) if path else None)


def register(subparsers: Any) -> None:
    """Add `python -m trainer sft`."""
    add_command(
        subparsers,
        name="sft",
        help_text="Supervised fine-tuning on ideal responses.",
        config_cls=SFTConfig,
        train=train_sft,
        required=("model", "out", "data"),
        report="loss",
    )

"""`generate`: K responses per prompt from a policy, written as the app's import records.

The output (JSONL of `trainer.schema.ImportRecord`) is what the app imports as the next round's
comparisons. Backends share one interface: `hf` (transformers `generate`: batched, KV cache, left
padding) everywhere, and `vllm` on GPU hosts where it is installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trainer.cli import dataclass_from_namespace, dataclass_to_arguments
from trainer.config import GenerateConfig
from trainer.schema import ImportRecord, ImportResponse


def generate_texts(config: GenerateConfig, prompts: Sequence[str]) -> list[list[str]]:
    """`config.k` sampled responses for each prompt (outer list follows `prompts`)."""
    if config.backend == "vllm":
        return _generate_vllm(config, prompts)
    return _generate_hf(config, prompts)


def generate_responses(
    config: GenerateConfig, prompts: Sequence[str | Mapping[str, Any]]
) -> list[ImportRecord]:
    """Import records (prompt + k responses tagged with the model version); writes `config.out`.

    A prompt is a string, or a mapping with `prompt` and optionally `external_id` and `context`,
    which are carried over so the app can tie the new comparison to its source prompt.
    """
    if not 2 <= config.k <= 8:  # one comparison shows 2..8 responses (ImportRecord)
        raise ValueError(f"k must be between 2 and 8 responses per prompt, got {config.k}")
    rows = [{"prompt": p} if isinstance(p, str) else dict(p) for p in prompts]
    version = config.model_version or Path(config.model).name
    generated = generate_texts(config, [r["prompt"] for r in rows])
    records = []
    for row, responses in zip(rows, generated, strict=True):
        # An empty sample is not importable (min_length=1); keep the slot visible rather than
        # silently dropping a response and shrinking the comparison.
        answers = [
            ImportResponse(text=r.strip() or "(empty response)", model_version=version)
            for r in responses
        ]
        extra = {k: row[k] for k in ("external_id", "context") if row.get(k) is not None}
        records.append(ImportRecord(prompt=row["prompt"], responses=answers, **extra))
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        with Path(config.out).open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(rec.model_dump_json(exclude_none=True) + "\n")
    return records


def _generate_hf(config: GenerateConfig, prompts: Sequence[str]) -> list[list[str]]:
    from trainer.policy import decode_responses, encode_prompts, load_policy, sample

    torch.manual_seed(config.seed)
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if config.bf16 and cuda else torch.float32
    model, tok = load_policy(config.model, dtype=dtype)
    model.to("cuda" if cuda else "cpu").eval()
    per_batch = max(1, config.batch_size // config.k)  # prompts per generate call
    out: list[list[str]] = []
    starts = range(0, len(prompts), per_batch)
    for start in tqdm(starts, desc="generate", disable=not config.progress):
        batch = list(prompts[start : start + per_batch])
        ids, mask = encode_prompts(
            tok, batch, chat_template=config.chat_template, max_tokens=config.max_prompt_tokens
        )
        roll = sample(
            model, tok, ids, mask, k=config.k, max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, top_p=config.top_p,
        )  # fmt: skip
        texts = decode_responses(tok, roll)
        out += [texts[i * config.k : (i + 1) * config.k] for i in range(len(batch))]
    return out


def _generate_vllm(config: GenerateConfig, prompts: Sequence[str]) -> list[list[str]]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:  # an optional GPU backend, never a dependency of the tests
        raise RuntimeError("backend 'vllm' needs `pip install vllm` on a GPU host") from err
    from trainer.policy import format_prompt, load_tokenizer

    tok = load_tokenizer(config.model)
    texts = [format_prompt(tok, p, chat_template=config.chat_template) for p in prompts]
    llm: Any = LLM(
        model=config.model, seed=config.seed, dtype="bfloat16" if config.bf16 else "auto"
    )
    params = SamplingParams(
        n=config.k, temperature=config.temperature, top_p=config.top_p,
        max_tokens=config.max_new_tokens, seed=config.seed,
    )  # fmt: skip
    return [[c.text for c in r.outputs] for r in llm.generate(texts, params)]


def register(subparsers: Any) -> None:
    """Add `python -m trainer generate`."""
    parser = subparsers.add_parser("generate", help="Sample K responses per prompt for import.")
    dataclass_to_arguments(parser, GenerateConfig, required=("model", "out", "prompts"))
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from trainer.rl import read_prompt_rows

    config = dataclass_from_namespace(GenerateConfig, args)
    records = generate_responses(config, read_prompt_rows(config.prompts))
    print(f"generate: {len(records)} prompts x {config.k} responses -> {config.out}")
    return 0

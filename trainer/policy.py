"""The policy: loading, prompt encoding, batched sampling and per-token log-probabilities.

Conventions every method relies on:
- prompts are LEFT-padded, so every prompt ends at the same column and responses start together;
- responses are RIGHT-padded to `max_new_tokens`; the response mask covers tokens up to and
  including the first EOS. The mask is built from the EOS position, never from `!= pad_id`,
  because many chat tokenizers (SmolLM2 among them) use EOS as the pad token.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.losses import entropy_from_logits, token_logprobs

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests and CI never reach a hub


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a checkpoint, set up for generation: left padding and a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    lora_r: int = 0,
    lora_alpha: int = 32,
) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint dir; with `lora_r > 0` the model is a peft LoRA model."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if lora_r > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            target_modules="all-linear",
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model, tokenizer


def is_peft(model: Any) -> bool:
    """True for a peft model (its reference is the same model with the adapter disabled)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def reference_mode(model: Any) -> Iterator[None]:
    """Inside this block a LoRA policy computes the reference (adapter off); else a no-op."""
    if is_peft(model):
        with model.disable_adapter():
            yield
    else:
        yield


def format_prompt(tokenizer: Any, prompt: str, *, chat_template: bool = True) -> str:
    """The prompt text the model sees: the chat template with the generation prompt, if any."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    return prompt


def encode_prompts(
    tokenizer: Any, prompts: list[str], *, chat_template: bool = True, max_tokens: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask) for `prompts`, each cut to its last `max_tokens`."""
    texts = [format_prompt(tokenizer, p, chat_template=chat_template) for p in prompts]
    # The template already holds the BOS/role tokens; adding special tokens again would double them.
    add_special = not (chat_template and getattr(tokenizer, "chat_template", None))
    rows = [tokenizer(t, add_special_tokens=add_special)["input_ids"][-max_tokens:] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def encode_responses(
    tokenizer: Any, responses: list[str], *, max_tokens: int = 256, append_eos: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (ids, mask) of response texts, each ending with EOS (offline SFT/DPO data)."""
    rows = []
    for text in responses:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_tokens - append_eos]
        rows.append(ids + [tokenizer.eos_token_id] if append_eos else ids)
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def response_mask(
    response_ids: torch.Tensor, eos_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask over tokens up to and including the first EOS, whether an EOS occurred) per row."""
    n = response_ids.size(1)
    if eos_id is None:
        return torch.ones_like(response_ids), torch.zeros(response_ids.size(0), dtype=torch.bool)
    is_eos = response_ids == eos_id
    has_eos = is_eos.any(-1)
    # First EOS index, or n when there is none (the response hit the length limit: keep it all).
    first = torch.where(
        has_eos, is_eos.int().argmax(-1), torch.full_like(has_eos, n, dtype=torch.long)
    )
    positions = torch.arange(n, device=response_ids.device).unsqueeze(0)
    return (positions <= first.unsqueeze(1)).long(), has_eos


@dataclass
class Rollout:
    """A batch of sampled responses with everything the losses need (rows grouped by prompt)."""

    prompt_ids: torch.Tensor  # (B, P), left-padded
    prompt_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R), right-padded with pad_id after the first EOS
    response_mask: torch.Tensor  # (B, R), 1 up to and including the first EOS
    has_eos: torch.Tensor  # (B,) bool
    prompt_index: torch.Tensor  # (B,) which input prompt each row answers


@torch.no_grad()
def sample(
    model: Any,
    tokenizer: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    *,
    k: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Rollout:
    """Sample `k` responses per prompt in one batched `generate` call (KV cache, stop at EOS)."""
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    cache = _shared_prefill(model, prompt_ids, prompt_mask, k) if k > 1 else {}
    ids = prompt_ids.repeat_interleave(k, 0)
    mask = prompt_mask.repeat_interleave(k, 0)
    # top_k=0: sample from the full (temperature, top-p) distribution, not a model default top-k,
    # so the log-probs used in training describe the distribution we actually sampled from.
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=True,
        temperature=temperature,
        top_p=top_p,
        top_k=0,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
        **cache,
    )
    responses = out[:, ids.size(1) :]
    if responses.size(1) < max_new_tokens:  # every row stopped early: pad to a fixed width
        pad = responses.new_full(
            (responses.size(0), max_new_tokens - responses.size(1)), tokenizer.pad_token_id
        )
        responses = torch.cat([responses, pad], 1)
    rmask, has_eos = response_mask(responses, tokenizer.eos_token_id)
    responses = responses.masked_fill(rmask == 0, tokenizer.pad_token_id)
    index = torch.arange(prompt_ids.size(0), device=device).repeat_interleave(k)
    return Rollout(ids, mask, responses, rmask, has_eos.to(device), index)


def _shared_prefill(
    model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, k: int
) -> dict[str, Any]:
    """`generate` kwargs with the KV cache of every prompt but its last token, computed once per
    prompt and repeated for its `k` samples (the k rows would otherwise each encode the prompt).

    `generate` then encodes only the last prompt token of each row before sampling.
    """
    if prompt_ids.size(1) < 2:
        return {}
    # Positions as `generate` counts them with left padding (padding columns are masked out).
    positions = (prompt_mask.cumsum(1) - 1).clamp_min(0)
    out = model(
        input_ids=prompt_ids[:, :-1],
        attention_mask=prompt_mask[:, :-1],
        position_ids=positions[:, :-1],
        use_cache=True,
        logits_to_keep=1,
    )
    # transformers 5 names the cache `cache`; 4.x (and 5's deprecated alias) `past_key_values`.
    name = "cache" if out.get("cache") is not None else "past_key_values"
    cache = out[name]
    cache.batch_repeat_interleave(k)
    return {name: cache}


def policy_forward(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    output_hidden_states: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """Per-token log-probs of the response (B, R) [, entropies] and the raw model output."""
    ids = torch.cat([prompt_ids, response_ids], 1)
    mask = torch.cat([prompt_mask, response_mask], 1)
    # With left padding, positions must count real tokens only, or the first real token of a short
    # prompt would sit at position 5 instead of 0 and the logits would differ from unpadded ones.
    position_ids = (mask.cumsum(1) - 1).clamp_min(0)
    # The LM head (vocab x hidden) and the softmax over the vocabulary cost as much as several
    # layers per position, so only the positions that predict a real response token are projected:
    # column P - 1 + t predicts response token t. The model returns them flattened (N, V).
    scored = response_mask.bool()
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[:, prompt_ids.size(1) - 1 : -1] = scored
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids,
        logits_to_keep=keep,
        output_hidden_states=output_hidden_states,
        use_cache=False,
    )
    logits = out.logits if temperature == 1.0 else out.logits / temperature
    logps = _unflatten(token_logprobs(logits, response_ids[scored]), scored)
    entropy = None
    if with_entropy:  # a metric: in slices, so its vocab-sized temporaries stay small
        flat = torch.cat([entropy_from_logits(part) for part in logits.detach().split(256)])
        entropy = _unflatten(flat, scored)
    return logps, entropy, out


def _unflatten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) values of the True cells of `mask` (B, R) back to (B, R), zero elsewhere (keeps grad)."""
    return values.new_zeros(mask.shape).masked_scatter(mask, values)


def decode_responses(tokenizer: Any, rollout: Rollout) -> list[str]:
    """Response texts without special tokens (the EOS and the padding)."""
    rows = [r[m.bool()] for r, m in zip(rollout.response_ids, rollout.response_mask, strict=True)]
    return [tokenizer.decode(r, skip_special_tokens=True) for r in rows]

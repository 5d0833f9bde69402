"""The real SmolLM2-135M-Instruct: GGUF converted once to safetensors, loaded, sampled, trained."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from trainer.checkpoints import convert_gguf, is_converted, smollm2_gguf
from trainer.config import RLOOConfig
from trainer.policy import encode_prompts, load_policy
from trainer.rloo import train_rloo

pytestmark = pytest.mark.usefixtures("torch_threads")


def test_converted_checkpoint_is_plain_and_loads_with_from_pretrained(
    smollm2_checkpoint: Path,
) -> None:
    assert is_converted(smollm2_checkpoint)
    config = json.loads((smollm2_checkpoint / "config.json").read_text())
    assert "quantization_config" not in config  # a quantised marker would forbid training/saving
    start = time.perf_counter()
    assert convert_gguf(smollm2_gguf(), smollm2_checkpoint) == smollm2_checkpoint
    assert time.perf_counter() - start < 1.0  # converted once: the second call only checks


@pytest.fixture(scope="module")
def smollm2(smollm2_checkpoint: Path):  # type: ignore[no-untyped-def]
    model, tok = load_policy(smollm2_checkpoint)
    return model.eval(), tok


def test_smollm2_weights_survived_the_conversion(smollm2) -> None:  # type: ignore[no-untyped-def]
    model, tok = smollm2
    assert tok.pad_token_id == tok.eos_token_id  # the pitfall every mask must survive
    ids, mask = encode_prompts(tok, ["What is the capital of France?"])
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12,
                         pad_token_id=tok.pad_token_id)  # fmt: skip
    answer = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer  # random or mis-copied weights could not say this
    assert all(p.requires_grad for p in model.parameters())


def test_rloo_with_lora_runs_on_smollm2(smollm2_checkpoint: Path) -> None:
    # LoRA keeps the CPU cost down (no second model, adapter-only optimizer) and exercises the
    # adapter-off reference on the real architecture.
    config = RLOOConfig(
        model=str(smollm2_checkpoint), out="", steps=2, prompts_per_step=1, k=2,
        max_new_tokens=6, lr=1e-4, lora=True, lora_r=4, progress=False,
    )  # fmt: skip
    prompts = ["What helps with a mild fever?", "How much water should an adult drink?"]
    metrics = train_rloo(config, prompts=prompts, reward=lambda p, r: [len(x) / 40 for x in r])
    first, last = metrics["first"], metrics["last"]
    assert metrics["steps"] == 2 and first["kl"] == 0.0 and first["ratio"] == 1.0
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert 0 < first["entropy"] < 11 and 1 <= first["response_length"] <= 6

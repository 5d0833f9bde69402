"""Tiny checkpoints built here (no hub) for tests and benchmarks: not part of the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def build_tiny_bert(out_dir: str | Path, tokenizer_dir: str | Path) -> Path:
    """Save a 2-layer, 32-wide BERT encoder with `tokenizer_dir`'s tokenizer (MiniLM's) to `out_dir`."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    BertModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)

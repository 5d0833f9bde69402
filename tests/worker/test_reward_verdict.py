"""The reward step reads the trainer's verdict (CONTRACTS #1): not learned stops the round."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import get_sessionmaker
from app.services.rounds import RoundConfig
from app.worker import training
from app.worker.pipeline import RoundContext
from app.worker.runner import StepFailed
from tests.factories import make_campaign


class _Lease:
    worker_id = "w"
    lost = threading.Event()


def _ctx(engine: Engine, tmp_path: Path, **config: Any) -> RoundContext:
    with Session(engine) as session, session.begin():
        campaign_id = make_campaign(session).id
    ctx = RoundContext(round_id=1, campaign_id=campaign_id, method="rloo",
                       config=RoundConfig(**config), dir=tmp_path, factory=get_sessionmaker(),
                       lease=_Lease())  # type: ignore[arg-type]
    (tmp_path / "snapshot").mkdir()
    for name in ("train.jsonl", "eval.jsonl"):
        (tmp_path / "snapshot" / name).write_text("{}\n")
    return ctx


def _trainer_says(monkeypatch: pytest.MonkeyPatch, metrics: dict[str, Any]) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(ctx: RoundContext, step: str, args: list[str]) -> float:
        calls.append(args)
        out = Path(args[args.index("--out") + 1])
        (out / "metrics.json").write_text(json.dumps(metrics))
        return 1.0

    monkeypatch.setattr(training, "_run", fake)
    return calls


def test_a_reward_model_that_did_not_learn_stops_the_round(
    committed_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trainer_says(monkeypatch, {"learned": False, "not_learned_reason": "held-out loss 0.70 >= ln 2"})
    with pytest.raises(StepFailed, match="did not learn: held-out loss 0.70"):
        training.reward(_ctx(committed_engine, tmp_path))
    assert not (tmp_path / "reward").exists()  # nothing renamed into place


def test_a_learned_verdict_passes_and_a_missing_one_is_unknown(
    committed_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _trainer_says(monkeypatch, {"eval_accuracy": 0.7, "history": []})
    result = training.reward(_ctx(committed_engine, tmp_path))
    assert result.metrics["learned"] == "unknown" and (tmp_path / "reward").is_dir()
    assert "--epochs" not in calls[0]  # the trainer sizes the budget from the data
    assert calls[0][calls[0].index("--max-length") + 1] == "512"  # RoundConfig's default
    assert "no 'learned' verdict" in (tmp_path / "logs" / "reward.log").read_text()

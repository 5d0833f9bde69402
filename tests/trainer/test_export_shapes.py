"""One export, two shapes, one training set: a K-way judgment weighs the same as a ranking or as
its pairwise rows (InstructGPT: each judgment counts once, its pairs share its weight)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.schemas.export import ExportQuery
from app.services.export import export_bytes
from tests.factories import make_campaign, make_comparisons, make_judgment, make_user
from trainer.data import Comparison, read_records, records_to_comparisons
from trainer.reward import train_reward_model

# Per 4-way comparison: one rater with a tie (5 strict pairs, 6 with the tie), one without (6).
RANKINGS = ([0, 1, 2, 2], [1, 0, 3, 2])


@pytest.fixture
def exports(db: Session, tmp_path: Path) -> dict[str, Path]:
    """The same judgments exported as rankings and as pairwise rows (ties kept, every pair)."""
    campaign = make_campaign(db)
    raters = [make_user(db), make_user(db)]
    for comparison in make_comparisons(db, campaign, count=10, k=4):
        for rater, ranks in zip(raters, RANKINGS, strict=True):
            make_judgment(db, comparison, rater, ranks=ranks, strength=2)
    files = {}
    for shape in ("ranking", "pairwise"):
        query = ExportQuery(shape=shape, ties="keep", campaign_id=campaign.id)
        files[shape] = tmp_path / f"{shape}.jsonl"
        files[shape].write_bytes(b"".join(export_bytes(db, query=query)))
    return files


def _pairs(comparisons: list[Comparison]) -> list[tuple[str, str, str, bool, float, float]]:
    """Every pair as texts, so the order responses were first seen in does not matter."""
    return sorted(
        (c.prompt, c.responses[p.better], c.responses[p.worse], p.tie, p.margin, round(p.weight, 9))
        for c in comparisons
        for p in c.pairs
    )


@pytest.mark.parametrize("ties", ["drop", "equal"])
def test_both_shapes_give_the_same_pairs_and_weights(exports: dict[str, Path], ties: str) -> None:
    ranking, pairwise = (
        records_to_comparisons(read_records(exports[s]), ties=ties, margin_scale=1.0)  # type: ignore[arg-type]
        for s in ("ranking", "pairwise")
    )
    assert _pairs(ranking) == _pairs(pairwise)
    # Two judgments per comparison, each weighing 1 however many pairs it implies.
    assert all(sum(p.weight for p in c.pairs) == pytest.approx(2.0) for c in pairwise)
    assert len(pairwise) == 10


def test_training_from_either_shape_gives_the_same_model(
    exports: dict[str, Path], tiny_bert_dir: Path
) -> None:
    from trainer.config import RewardConfig

    metrics = {
        shape: train_reward_model(
            RewardConfig(
                model=str(tiny_bert_dir), out="", data=str(path), epochs=2, batch_size=4,
                lr=2e-3, max_length=32, margin=True, eval_fraction=0.2, progress=False,
            )  # fmt: skip
        )
        for shape, path in exports.items()
    }
    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        assert metrics["ranking"][key] == pytest.approx(metrics["pairwise"][key], rel=1e-4), key

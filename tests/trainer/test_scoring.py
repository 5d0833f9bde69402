"""Scoring in length-sorted chunks: the cheapest split, and the same rewards and gradients."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch

from trainer.reward import load_reward_model
from trainer.scoring import chunked_rewards, plan_chunks, sequence_rewards


def cost(lengths: list[int], chunks: list[list[int]], forward_cost: int) -> int:
    """Padded tokens of a split plus what its forward passes cost."""
    return sum(len(c) * max(lengths[i] for i in c) + forward_cost for c in chunks)


def cheapest_by_brute_force(lengths: list[int], forward_cost: int) -> int:
    """Every way to cut the sorted rows into contiguous chunks, the cheapest cost."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    for cuts in itertools.product([False, True], repeat=len(order) - 1):
        chunks, current = [], [order[0]]
        for i, cut in zip(order[1:], cuts, strict=True):
            if cut:
                chunks.append(current)
                current = []
            current.append(i)
        chunks.append(current)
        c = cost(lengths, chunks, forward_cost)
        best = c if best is None else min(best, c)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(30))
def test_the_plan_covers_every_row_once_at_the_least_cost(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 9))]
    forward_cost = rng.choice([1, 16, 64, 500])
    chunks = plan_chunks(lengths, forward_cost)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    assert cost(lengths, chunks, forward_cost) == cheapest_by_brute_force(lengths, forward_cost)


def test_the_plan_keeps_one_chunk_when_splitting_is_off_or_does_not_pay() -> None:
    lengths = [10, 200, 12, 190]
    assert len(plan_chunks(lengths, 0)) == 1
    assert len(plan_chunks([100, 101, 99, 100], 64)) == 1  # no padding worth a forward
    # Two short and two long rows: 400 + 40 padded tokens in two chunks, not 800 in one.
    assert sorted(map(sorted, plan_chunks(lengths, 64))) == [[0, 2], [1, 3]]


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_llama_dir"])
def test_chunked_rewards_and_gradients_equal_one_padded_forward(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    model_dir: Path = request.getfixturevalue(fixture)
    model, tok = load_reward_model(str(model_dir))
    torch.manual_seed(0)
    lengths = [3, 17, 5, 30, 16, 4]
    width = max(lengths)
    ids = torch.full((len(lengths), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1000, 2000, (n,))
        mask[row, :n] = 1
    weights = torch.randn(len(lengths))  # a loss that tells every row apart

    def rewards_and_grads(forward_cost: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        if forward_cost:
            r = chunked_rewards(model, ids, mask, forward_cost=forward_cost)
            assert len(plan_chunks(lengths, forward_cost)) > 1  # it did split
        else:
            r = sequence_rewards(model, ids, mask)
        (r * weights).sum().backward()
        return r.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole, whole_grads = rewards_and_grads(0)
    chunked, chunked_grads = rewards_and_grads(4)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert len(whole_grads) == len(chunked_grads)
    for a, b in zip(whole_grads, chunked_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_training_in_chunks_ends_with_the_model_one_padded_forward_gives(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from tests.factories import marker_rankings
    from trainer.config import RewardConfig
    from trainer.reward import train_reward_model

    records, held = marker_rankings(32, seed=5), marker_rankings(8, 6, start=100)
    weights = {}
    for cost in (0, 4):
        out = tmp_path / f"cost-{cost}"
        config = RewardConfig(
            model=str(tiny_bert_dir), out=str(out), epochs=2, batch_size=4, lr=2e-3,
            max_length=32, forward_cost=cost, progress=False,
        )  # fmt: skip
        train_reward_model(config, records=records, eval_records=held)
        weights[cost] = load_file(out / "model.safetensors")
    moved = load_file(tiny_bert_dir / "model.safetensors")
    assert weights[0].keys() == weights[4].keys()
    for name, tensor in weights[0].items():
        assert torch.allclose(tensor, weights[4][name], atol=1e-4), name
    # ... and training did move the weights, so the equality above says something.
    key = next(k for k in moved if k.endswith("word_embeddings.weight"))
    assert not torch.allclose(moved[key], weights[0]["bert." + key], atol=1e-3)


def test_length_baseline_fits_its_direction_on_the_training_pairs() -> None:
    from trainer.data import Comparison, Pair
    from trainer.scoring import length_baseline_accuracy

    def comp(better: str, worse: str) -> Comparison:
        return Comparison(key=better, prompt="q", responses=[better, worse], pairs=[Pair(0, 1)])

    shorter_wins = [comp("a", "bbb"), comp("cc", "dddd")]
    held = [comp("x", "yyy"), comp("zz", "w"), comp("uu", "vv")]  # shorter, longer, equal
    tie = Comparison(key="t", prompt="q", responses=["a", "bb"], pairs=[Pair(0, 1, tie=True)])
    assert length_baseline_accuracy(shorter_wins, [*held, tie]) == (1 + 0 + 0.5) / 3
    longer_wins = [comp("bbb", "a")]
    assert length_baseline_accuracy(longer_wins, held) == (0 + 1 + 0.5) / 3
    assert length_baseline_accuracy(longer_wins, []) is None


def test_learned_verdict_names_why_not() -> None:
    from trainer.scoring import learned_verdict

    # The issue-18 model: rewards that order most pairs, a loss that is a coin flip's.
    learned, reason = learned_verdict(0.69313, 0.535, 0.495)
    assert not learned and reason is not None and "not below ln 2" in reason
    learned, reason = learned_verdict(0.68, 0.55, 0.56)
    assert not learned and reason is not None and "length baseline 0.560" in reason
    assert learned_verdict(0.68, 0.60, 0.50) == (True, None)
    assert learned_verdict(None, None, None)[0] is False

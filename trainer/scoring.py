"""Scores from a reward model: one scalar per sequence, read at its last real token.

`chunked_rewards` scores a padded batch in length-sorted chunks: the batch (and so the gradient)
is exactly the one the sampler drew, but most padding is never computed. `evaluate` reports
held-out accuracy, gold accuracy and how unsafe responses score against the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from trainer.batching import collate
from trainer.data import Comparison, Encoded


def _per_token_head(model: torch.nn.Module) -> torch.nn.Module | None:
    # Decoder classifiers (Llama, Qwen, GPT-2 ...) apply `score` to every token, then pool.
    return next((m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == "score"), None)


def sequence_rewards(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """One reward per row, read at the last token the attention mask marks as real."""
    head = _per_token_head(model)
    captured: list[torch.Tensor] = []
    # transformers pools decoder classifiers at the last token that is not the pad id, so with
    # pad == EOS a sequence ending in EOS is scored one token early (transformers#35352). We take
    # the per-token scores with a hook instead of calling submodules, so DDP/peft wrappers still
    # see one ordinary forward.
    handle = head.register_forward_hook(lambda _m, _i, out: captured.append(out)) if head else None
    try:
        out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        if handle is not None:
            handle.remove()
    if not captured or captured[-1].dim() != 3:
        return out.logits.squeeze(-1)
    per_token = captured[-1].squeeze(-1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * attention_mask).argmax(-1)
    return per_token[torch.arange(per_token.shape[0], device=per_token.device), last]


# One more forward + backward of MiniLM-L6 on one CPU thread costs about as much as this many
# tokens (bench/reward_vs_trl.py --forward-cost). Unmeasured on GPUs, where small chunks also
# waste the device's width: there the default keeps whole batches.
CPU_FORWARD_COST = 64


def resolve_forward_cost(forward_cost: int | None, device: torch.device) -> int:
    """The configured cost of a forward pass, or the default for `device`."""
    if forward_cost is not None:
        return forward_cost
    return CPU_FORWARD_COST if device.type == "cpu" else 0


def plan_chunks(lengths: Sequence[int], forward_cost: int) -> list[list[int]]:
    """Rows split into length-sorted chunks that minimise padded tokens + `forward_cost` each.

    Each chunk is padded to its longest row. An exact dynamic programme over the sorted lengths
    (O(n^2) for n rows; a batch holds tens). `forward_cost` is what one more forward pass costs,
    in tokens: 0 keeps one chunk (the whole batch padded to its longest row).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if forward_cost <= 0 or len(order) < 2:
        return [order]
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest cover of the j shortest rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        width = lengths[order[j - 1]]  # the longest row of any chunk that ends at j
        for i in range(j):
            cost = best[i] + (j - i) * width + forward_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    spans, j = [], n
    while j > 0:
        spans.append(order[cut[j] : j])
        j = cut[j]
    return spans[::-1]


def chunked_rewards(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    forward_cost: int = 0,
) -> torch.Tensor:
    """`sequence_rewards` of a right-padded batch, computed chunk by chunk (see `plan_chunks`)."""
    if forward_cost <= 0:  # no split: skip reading the lengths back (a device sync on GPUs)
        return sequence_rewards(model, input_ids, attention_mask)
    lengths = attention_mask.sum(-1).tolist()
    plan = plan_chunks(lengths, forward_cost)
    if len(plan) == 1:
        return sequence_rewards(model, input_ids, attention_mask)
    parts, rows = [], []
    for chunk in plan:
        index = torch.tensor(chunk, device=input_ids.device)
        width = max(lengths[i] for i in chunk)  # right padding: columns past it are all pad
        parts.append(
            sequence_rewards(model, input_ids[index, :width], attention_mask[index, :width])
        )
        rows += chunk
    # Back to the batch's row order; the gather keeps the graph, so one backward covers all.
    position = torch.empty(len(rows), dtype=torch.long)
    position[torch.tensor(rows)] = torch.arange(len(rows))
    return torch.cat(parts)[position.to(input_ids.device)]


EVAL_SUMS = ("pairs", "correct", "loss", "gold_pairs", "gold_correct", "unsafe_n", "unsafe_sum")
EVAL_SUMS += ("other_n", "other_sum", "tie_pairs", "tie_absdiff")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    encoded: Sequence[Encoded],
    *,
    pad_id: int,
    batch_size: int = 8,
    forward_cost: int = 0,
    accelerator: Any = None,
) -> dict[str, float]:
    """Pairwise accuracy and BT loss on strict pairs, gold accuracy, unsafe vs other rewards."""
    was_training = model.training
    model.eval()
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    mine = sorted(encoded[rank::world], key=lambda e: e.width)  # sorted: little padding
    device = next(model.parameters()).device
    sums = dict.fromkeys(EVAL_SUMS, 0.0)
    for start in range(0, len(mine), batch_size):
        batch = {
            k: v.to(device) for k, v in collate(mine[start : start + batch_size], pad_id).items()
        }
        r = chunked_rewards(
            model, batch["input_ids"], batch["attention_mask"], forward_cost=forward_cost
        ).float()
        diff = r[batch["better"]] - r[batch["worse"]]
        strict = ~batch["tie"]
        sums["pairs"] += strict.sum().item()
        sums["correct"] += (diff > 0)[strict].sum().item()
        sums["loss"] += -torch.nn.functional.logsigmoid(diff[strict]).sum().item()
        gold = strict & batch["gold"]
        sums["gold_pairs"] += gold.sum().item()
        sums["gold_correct"] += (diff > 0)[gold].sum().item()
        sums["tie_pairs"] += batch["tie"].sum().item()
        sums["tie_absdiff"] += diff[batch["tie"]].abs().sum().item()
        unsafe = batch["unsafe"]
        sums["unsafe_n"] += unsafe.sum().item()
        sums["unsafe_sum"] += r[unsafe].sum().item()
        sums["other_n"] += (~unsafe).sum().item()
        sums["other_sum"] += r[~unsafe].sum().item()
    if accelerator is not None and world > 1:
        total = accelerator.reduce(torch.tensor([sums[k] for k in EVAL_SUMS], device=device), "sum")
        sums = dict(zip(EVAL_SUMS, total.tolist(), strict=True))
    model.train(was_training)

    def ratio(a: str, b: str) -> float | None:
        return sums[a] / sums[b] if sums[b] else None

    return {
        "accuracy": ratio("correct", "pairs"),
        "loss": ratio("loss", "pairs"),
        "pairs": int(sums["pairs"]),
        "gold_accuracy": ratio("gold_correct", "gold_pairs"),
        "gold_pairs": int(sums["gold_pairs"]),
        "tie_pairs": int(sums["tie_pairs"]),
        "tie_mean_abs_diff": ratio("tie_absdiff", "tie_pairs"),
        "unsafe_responses": int(sums["unsafe_n"]),
        "mean_reward_unsafe": ratio("unsafe_sum", "unsafe_n"),
        "mean_reward_other": ratio("other_sum", "other_n"),
    }  # type: ignore[return-value]


def length_baseline_accuracy(
    train: Sequence[Comparison], held: Sequence[Comparison]
) -> float | None:
    """Held-out accuracy of "the longer response wins" (or the shorter, if training says so).

    The direction is fitted on the training pairs, as a model would be; strict pairs only, as in
    `evaluate`, and a pair of equal lengths counts as half right.
    """

    def longer_wins(comparisons: Sequence[Comparison]) -> tuple[float, int]:
        score, n = 0.0, 0
        for c in comparisons:
            for p in c.pairs:
                if not p.tie:
                    a, b = len(c.responses[p.better]), len(c.responses[p.worse])
                    score, n = score + (1.0 if a > b else 0.5 if a == b else 0.0), n + 1
        return score, n

    fit, n_fit = longer_wins(train)
    score, n = longer_wins(held)
    if not n:
        return None
    return score / n if fit >= n_fit / 2 else 1 - score / n


# A held-out loss within this of ln 2 is a coin flip on every pair: rewards that barely differ
# can still order most pairs right (the issue-18 model: loss 0.69313, accuracy 0.535).
LN2_MARGIN = 1e-3


def learned_verdict(
    loss: float | None, accuracy: float | None, length_baseline: float | None
) -> tuple[bool, str | None]:
    """Learned or not, and why not: held-out loss not below ln 2, or accuracy not above length."""
    if loss is None or accuracy is None:
        return False, "no held-out pairs to judge it by (set --eval-fraction or --eval-data)"
    if loss >= math.log(2) - LN2_MARGIN:
        return False, (
            f"held-out loss {loss:.4f} is not below ln 2 = {math.log(2):.4f} (by {LN2_MARGIN}):"
            " its rewards barely separate the responses"
        )
    if length_baseline is not None and accuracy <= length_baseline:
        return False, (
            f"held-out accuracy {accuracy:.3f} is not above the length baseline"
            f" {length_baseline:.3f}"
        )
    return True, None

"""Batches of encoded comparisons: the order they are drawn in, and how they are padded."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from trainer.data import Encoded


class ShuffledBatches(Sampler[list[int]]):
    """Batches of comparisons drawn at random, reshuffled on every pass; optionally grouped by width."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, seed: int, group_by_length: bool = False
    ):
        self.lengths = list(lengths)
        self.batch_size, self.seed, self.group = batch_size, seed, group_by_length
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.group:
            # Sort within mega-batches of 50 batches (as HF's LengthGroupedSampler): little padding,
            # yet the batch order stays random.
            mega = self.batch_size * 50
            chunks = [order[i : i + mega] for i in range(0, len(order), mega)]
            order = [i for ch in chunks for i in sorted(ch, key=lambda j: -self.lengths[j])]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # A short batch goes last: Accelerate's sharding across processes expects that.
        tail = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        rng.shuffle(batches)
        return iter(batches + tail)


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad every response of the batch to its longest; pairs index into the flat rows."""
    seqs = [ids for enc in batch for ids in enc.input_ids]
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, : len(s)] = torch.tensor(s)
        mask[row, : len(s)] = 1
    pairs, offsets, start = [], [], 0
    for enc in batch:
        pairs += enc.pairs
        offsets += [start] * len(enc.pairs)
        start += len(enc.input_ids)
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "unsafe": torch.tensor([u for enc in batch for u in enc.unsafe], dtype=torch.bool),
        "better": torch.tensor(
            [o + p.better for o, p in zip(offsets, pairs, strict=True)], dtype=torch.long
        ),
        "worse": torch.tensor(
            [o + p.worse for o, p in zip(offsets, pairs, strict=True)], dtype=torch.long
        ),
        "tie": torch.tensor([p.tie for p in pairs], dtype=torch.bool),
        "margin": torch.tensor([p.margin for p in pairs], dtype=torch.float),
        "weight": torch.tensor([p.weight for p in pairs], dtype=torch.float),
        "gold": torch.tensor([p.gold for p in pairs], dtype=torch.bool),
    }

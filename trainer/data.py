"""Preference records → comparisons → tokenized, length-grouped, dynamically padded batches.

A comparison is one prompt with its distinct responses and every pair that any judgment on it
implies. Each response is tokenized and encoded once per step however many pairs it is in: a K-way
ranking costs K forward passes, not 2 per pair (InstructGPT's batching).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from trainer.schema import (
    UNSAFE,
    AggregatedRecord,
    ConversationalPairwiseRecord,
    FineGrainedQuestion,
    HHPair,
    Message,
    PairExpansion,
    PairwiseRecord,
    RankingRecord,
    TieHandling,
    pair_margin,
)

Record = RankingRecord | PairwiseRecord | ConversationalPairwiseRecord | AggregatedRecord

# The trainer's tie option: drop tied pairs, or train their two rewards toward equal. "equal" is
# the export's "keep" (tied pairs are kept, with tie=true) seen from the loss.
TrainTies = Literal["drop", "equal"]
EXPORT_TIES: dict[TrainTies, TieHandling] = {"drop": "drop", "equal": "keep"}


@dataclass(frozen=True)
class Pair:
    """One implied preference between two responses of a comparison."""

    better: int
    worse: int
    tie: bool = False
    margin: float = 0.0
    weight: float = 1.0
    gold: bool = False


@dataclass
class Comparison:
    """A prompt, its distinct responses, and all the pairs the judgments on it imply."""

    key: str
    prompt: str
    responses: list[str] = field(default_factory=list)
    unsafe: list[bool] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)

    def response_index(self, text: str, flags: Iterable[str] = (), confirmed: bool = False) -> int:
        """Index of `text` among the responses, adding it the first time it is seen."""
        if text not in self.responses:
            self.responses.append(text)
            self.unsafe.append(False)
        i = self.responses.index(text)
        # A lead's confirmation marks it unsafe even where this rater did not flag it.
        self.unsafe[i] = self.unsafe[i] or confirmed or UNSAFE in flags
        return i


def open_text(path: str | Path) -> Any:
    """Open a text file, gunzipping `.gz`."""
    p = Path(path)
    return gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else p.open(encoding="utf-8")


def parse_record(row: dict[str, Any]) -> Record:
    """One JSON object as our export record (by `kind`) or a TRL {prompt, chosen, rejected} row."""
    kind = row.get("kind")
    if kind == "ranking":
        return RankingRecord.model_validate(row)
    if kind == "aggregated":
        return AggregatedRecord.model_validate(row)
    if kind == "pairwise_conversational" or (kind is None and isinstance(row.get("chosen"), list)):
        return ConversationalPairwiseRecord.model_validate({"prompt": [], **row})
    if kind == "pairwise" or kind is None:
        trl_keys = {"prompt", "chosen", "rejected", "margin"}
        if kind is None and not set(row) <= trl_keys:
            raise ValueError(f"unknown fields {sorted(set(row) - trl_keys)} in a TRL row")
        return PairwiseRecord.model_validate({"prompt": "", **row})
    raise ValueError(f"unknown record kind {kind!r}")


def read_records(path: str | Path) -> list[Record]:
    """All records of a JSONL file; a bad line raises ValueError naming its line number."""
    records = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if isinstance(row, dict) and row.get("kind") == "skip":
                    continue  # a skipped comparison: data for people, no preference to learn
                records.append(parse_record(row))
            except (json.JSONDecodeError, ValidationError, ValueError) as err:
                raise ValueError(f"{path}:{lineno}: {err}") from err
    return records


def write_records(records: Iterable[Record], path: str | Path) -> None:
    """Write records as JSONL, one export record a line."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.model_dump_json(exclude_none=True) + "\n")


def data_hash(records: Sequence[Record]) -> str:
    """sha256 of the records' canonical JSON: what a saved model was trained on."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(r.model_dump(mode="json"), sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def render_messages(messages: Sequence[Message]) -> str:
    """Chat messages as plain text in HH-RLHF's style ("\n\nUser: ...\n\nAssistant: ...")."""
    return "".join(f"\n\n{m.role.capitalize()}: {m.content}" for m in messages)


def as_basic_record(rec: Record) -> RankingRecord | PairwiseRecord:
    """Aggregated rows become their consensus ranking; conversational pairs become text pairs."""
    if isinstance(rec, AggregatedRecord):
        return RankingRecord(
            comparison_id=rec.comparison_id, prompt=rec.prompt, responses=rec.responses,
            ranks=rec.consensus_ranks, is_gold=rec.is_gold, weight=float(max(rec.n_raters, 1)),
        )  # fmt: skip
    if isinstance(rec, ConversationalPairwiseRecord):
        fields = rec.model_dump(exclude={"kind", "prompt", "chosen", "rejected"})
        return PairwiseRecord(
            prompt=render_messages(rec.prompt), chosen=render_messages(rec.chosen),
            rejected=render_messages(rec.rejected), **fields,
        )  # fmt: skip
    if isinstance(rec, PairwiseRecord) and not rec.prompt:
        # TRL's implicit-prompt rows: the shared start is the prompt. prompt + response is the
        # same text, so tokens do not change, but grouping and the held-out split now work.
        shared = os.path.commonprefix([rec.chosen, rec.rejected])
        shared = shared[: min(len(shared), len(rec.chosen) - 1, len(rec.rejected) - 1)]
        n = max(shared.rfind(" "), shared.rfind("\n")) + 1  # cut between words, not inside one
        if n > 0:
            return rec.model_copy(
                update={
                    "prompt": rec.chosen[:n],
                    "chosen": rec.chosen[n:],
                    "rejected": rec.rejected[n:],
                }
            )
    return rec


def records_to_comparisons(
    records: Iterable[Record],
    *,
    ties: TrainTies = "drop",
    expansion: PairExpansion = "all",
    margin_scale: float | None = None,
    rater_weights: bool = True,
) -> list[Comparison]:
    """Group records by comparison (or prompt), dedupe responses, and collect their pairs.

    Each judgment counts once whatever its K (InstructGPT): its pairs share its weight, whether
    they come as one ranking or as the pairwise rows of one `judgment_id`.
    """
    basic = [as_basic_record(rec) for rec in records]
    keep_ties = EXPORT_TIES[ties] == "keep"
    rows_per_judgment = Counter(
        _judgment_key(rec) for rec in basic
        if isinstance(rec, PairwiseRecord) and (keep_ties or not rec.tie)
    )  # fmt: skip
    by_key: dict[str, Comparison] = {}
    for row, rec in enumerate(basic):
        cid = rec.comparison_id
        # Rows with neither id nor prompt are their own comparison, never one giant group.
        key = f"c:{cid}" if cid is not None else f"p:{rec.prompt}" if rec.prompt else f"r:{row}"
        comp = by_key.setdefault(key, Comparison(key=key, prompt=rec.prompt))
        weight = rec.weight if rater_weights else 1.0
        if isinstance(rec, RankingRecord):
            implied = rec.pairs(ties=EXPORT_TIES[ties], expansion=expansion)
            idx = [comp.response_index(r.text, r.flags, r.confirmed_unsafe) for r in rec.responses]
            for better, worse, tie in implied:
                strength = pair_margin(rec.ranks, rec.strength, better, worse)
                m = strength * margin_scale if margin_scale is not None else 0.0
                w = weight / len(implied)
                comp.pairs.append(Pair(idx[better], idx[worse], tie, m, w, rec.is_gold))
        else:
            if rec.tie and not keep_ties:
                continue
            b = comp.response_index(rec.chosen, rec.chosen_flags, rec.chosen_confirmed_unsafe)
            w_ = comp.response_index(
                rec.rejected, rec.rejected_flags, rec.rejected_confirmed_unsafe
            )
            m = rec.margin * margin_scale if margin_scale is not None and not rec.tie else 0.0
            w = weight / rows_per_judgment[_judgment_key(rec)]
            comp.pairs.append(Pair(b, w_, rec.tie, m, w, rec.is_gold))
    return [c for c in by_key.values() if c.pairs]


def _judgment_key(rec: PairwiseRecord) -> tuple[object, object] | int:
    """The judgment a pairwise row came from; a row without a judgment id is its own."""
    if rec.judgment_id is None:
        return id(rec)
    return (rec.comparison_id, rec.judgment_id)


def split_by_prompt(
    comparisons: Sequence[Comparison], fraction: float, seed: int
) -> tuple[list[Comparison], list[Comparison]]:
    """Hold out a share of the prompts: no prompt is ever on both sides."""
    prompts = sorted({c.prompt for c in comparisons})
    random.Random(seed).shuffle(prompts)
    n_eval = round(len(prompts) * fraction)
    if fraction > 0 and len(prompts) > 1:
        n_eval = min(max(n_eval, 1), len(prompts) - 1)
    held = set(prompts[:n_eval])
    return [c for c in comparisons if c.prompt not in held], [
        c for c in comparisons if c.prompt in held
    ]


@dataclass
class Encoded:
    """A comparison's token ids (one list per response) and its pairs."""

    input_ids: list[list[int]]
    unsafe: list[bool]
    pairs: list[Pair]

    @property
    def n_tokens(self) -> int:
        """Tokens over all its responses: the cost of encoding it."""
        return sum(len(ids) for ids in self.input_ids)

    @property
    def width(self) -> int:
        """Its longest response: what a batch holding it is padded to."""
        return max(len(ids) for ids in self.input_ids)


def _special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (e.g. [CLS] … [SEP])."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    start = next(i for i in range(len(full)) if full[i : i + len(bare)] == bare)
    return full[:start], full[start + len(bare) :]


def encode_comparisons(
    comparisons: Sequence[Comparison],
    tokenizer: Any,
    *,
    max_length: int,
    append_eos: bool = True,
    truncation_head: float = 0.0,
) -> list[Encoded]:
    """Tokenize prompt+response for every response; cut what is too long from its middle.

    A text longer than `max_length` keeps `truncation_head` of the budget from its start and the
    rest from its end (0: the end only). The end holds the response, the question before it and,
    for a causal LM, the token it is scored at; the start holds a context's opening (a passage's
    title and first sentences), which answers quote most: on FineGrainedRLHF at 512 tokens,
    answers' word overlap with the passage that a model sees orders 0.524 of the strict pairs when
    cut from the left, 0.549 with a quarter kept from the start, 0.564 with nothing cut.
    """
    prefix, suffix = _special_affixes(tokenizer)
    eos = tokenizer.eos_token_id if append_eos else None
    budget = max_length - len(prefix) - len(suffix) - (eos is not None)
    head = int(budget * truncation_head)
    texts = [c.prompt + r for c in comparisons for r in c.responses]
    bodies = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    it = iter(bodies)
    out = []
    for c in comparisons:
        ids = []
        for _ in c.responses:
            body = next(it)
            if eos is not None and body and body[-1] == eos:
                body = body[:-1]
            tail = [eos] if eos is not None else []
            if len(body) > budget:
                body = body[:head] + body[len(body) - (budget - head) :]
            ids.append(prefix + body + tail + suffix)
        out.append(Encoded(ids, list(c.unsafe), list(c.pairs)))
    return out


# Public API: the public preference sets in ../shared/data (see its README) as our records, so
# the reward model trains and is benchmarked on real judgments (bench/reward_vs_trl.py):
#   records = hh_rlhf_records("hh-rlhf-harmless/pairs.jsonl.gz"); write_records(records, path)


def hh_rlhf_records(path: str | Path, limit: int | None = None) -> list[RankingRecord]:
    """HH-RLHF {chosen, rejected} dialogues as 2-way rankings; the prompt is the shared prefix."""
    out = []
    with open_text(path) as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            prompt, chosen, rejected = HHPair.model_validate_json(line).split() or ("", "", "")
            out.append(
                RankingRecord(
                    comparison_id=f"hh-{i}",
                    prompt=prompt,
                    responses=[{"text": chosen}, {"text": rejected}],  # type: ignore[list-item]
                    ranks=[0, 1],
                )
            )
    return out


def finegrained_records(path: str | Path, limit: int | None = None) -> list[RankingRecord]:
    """FineGrainedRLHF QA: four answers, six pairwise votes, as one weak order each (Copeland)."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))[:limit]
    out = []
    for i, row in enumerate(rows):
        question = FineGrainedQuestion.model_validate(row)
        out.append(
            RankingRecord(
                comparison_id=f"fg-{i}",
                prompt=question.prompt(),
                responses=[{"text": t} for t in question.predictions],  # type: ignore[misc]
                ranks=question.ranks(),
            )
        )
    return out

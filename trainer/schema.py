"""The export record: the one contract between the app and the trainer.

The app writes these records (REST export, `prefloop export`, the worker's snapshot); the trainer
reads them. Pydantic only: importing this module must not pull in torch. Rankings are stored raw
(a weak order over the responses in display order); pairs are derived here, in one place, so the
export and the trainer expand a ranking the same way.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "prefloop.v1"

# Flags a rater can set on one response. Campaigns choose a subset; these two are always offered.
UNSAFE = "unsafe"
FACTUALLY_WRONG = "factually_wrong"
KNOWN_FLAGS = (UNSAFE, FACTUALLY_WRONG, "incomplete", "off_topic")

# Strength of preference of the top response over the next, as the 2-way scale records it.
STRENGTH_LEVELS = {0: "tie", 1: "slightly better", 2: "better", 3: "much better"}

TieHandling = Literal["drop", "keep"]
PairExpansion = Literal["all", "best_vs_rest"]


def is_weak_order(ranks: list[int]) -> bool:
    """True when `ranks` are dense ranks from 0 (ties share a rank, no rank is skipped)."""
    return bool(ranks) and sorted(set(ranks)) == list(range(len(set(ranks))))


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def written_fields(model: type[BaseModel]) -> list[str]:
    """A record's fields in the order export files carry them: its own (`kind` first), then
    those it shares with other records (a pair's provenance). Writers and tests read this."""
    inherited = {
        name
        for base in model.__mro__[1:]
        if isinstance(base, type) and issubclass(base, BaseModel)
        for name in base.model_fields
    }
    own = [name for name in model.model_fields if name not in inherited]
    return own + [name for name in model.model_fields if name in inherited]


class ResponseRecord(_Record):
    """One response as it was shown, with the flags the rater set on it."""

    response_id: int | str | None = None
    text: str
    model_version: str | None = Field(None, description="Which policy wrote it (never shown to raters).")
    flags: list[str] = Field(default_factory=list, description="e.g. unsafe, factually_wrong.")
    read_to_end: bool | None = Field(
        None, description="Whether the rater scrolled it to its end (None: not recorded)."
    )
    confirmed_unsafe: bool = Field(
        False, description="A clinical lead confirmed a rater's unsafe flag: a hard negative."
    )


class RankingRecord(_Record):
    """One judgment: the full weak order a rater gave over the responses, in display order."""

    kind: Literal["ranking"] = "ranking"
    schema_version: str = SCHEMA_VERSION
    comparison_id: int | str
    judgment_id: int | str | None = None
    prompt: str
    responses: list[ResponseRecord] = Field(min_length=2)
    ranks: list[int] = Field(description="ranks[i] is the rank of responses[i]; 0 is best; equal ranks tie.")
    strength: int | None = Field(
        None, ge=0, le=3, description="How much better the best is than the next (0 tie .. 3 much better)."
    )
    not_rankable: bool = Field(False, description="The rater found every response unacceptable.")
    rater: str | None = Field(None, description="A stable pseudonym, never an email.")
    campaign: str | None = None
    round: int | None = None
    is_gold: bool = False
    weight: float = Field(1.0, ge=0, description="Rater reliability weight for this judgment.")
    late: bool = Field(
        False,
        description="Submitted after the rater's lease expired. Kept and counted like any other "
        "judgment (a comparison may then have one more rater than its overlap).",
    )
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _ranks_fit_responses(self) -> RankingRecord:
        if self.not_rankable:
            return self
        if len(self.ranks) != len(self.responses):
            raise ValueError("ranks must give one rank per response")
        if not is_weak_order(self.ranks):
            raise ValueError("ranks must be dense ranks from 0 (a weak order)")
        return self

    def pairs(
        self, *, ties: TieHandling = "drop", expansion: PairExpansion = "all"
    ) -> list[tuple[int, int, bool]]:
        """Pairs (better index, worse index, is_tie) this ranking implies."""
        if self.not_rankable:
            return []
        return implied_pairs(self.ranks, ties=ties, expansion=expansion)


class SkipRecord(_Record):
    """A comparison a rater gave back instead of judging it: no preference, but data all the same."""

    kind: Literal["skip"] = "skip"
    schema_version: str = SCHEMA_VERSION
    comparison_id: int | str
    prompt: str
    reason: str = Field(description="specialty, unclear, conflict or other.")
    note: str | None = None
    rater: str | None = Field(None, description="A stable pseudonym, never an email.")
    campaign: str | None = None
    round: int | None = None
    is_gold: bool = False
    created_at: datetime | None = Field(None, description="When the rater skipped it.")


def pair_margin(ranks: list[int], strength: int | None, better: int, worse: int) -> int:
    """The rater's strength on the top pair (the best over the next rank), 0 on every other pair.

    The strength scale asks how much better the best is than the next, so it says nothing of the
    other pairs a K-way ranking implies (nor of a tie, whose ranks are never 0 and 1).
    """
    if strength is None or ranks[better] != 0 or ranks[worse] != 1:
        return 0
    return strength


def implied_pairs(
    ranks: list[int], *, ties: TieHandling = "drop", expansion: PairExpansion = "all"
) -> list[tuple[int, int, bool]]:
    """All (better, worse, is_tie) index pairs of a weak order; `best_vs_rest` keeps rank-0 pairs."""
    out: list[tuple[int, int, bool]] = []
    n = len(ranks)
    for i in range(n):
        for j in range(i + 1, n):
            if expansion == "best_vs_rest" and min(ranks[i], ranks[j]) != 0:
                continue
            if ranks[i] == ranks[j]:
                if ties == "keep":
                    out.append((i, j, True))
            elif ranks[i] < ranks[j]:
                out.append((i, j, False))
            else:
                out.append((j, i, False))
    return out


class _PairProvenance(_Record):
    """What every pairwise row carries besides its texts: margin, tie, where it came from, flags."""

    margin: float = 0.0
    tie: bool = False
    comparison_id: int | str | None = None
    judgment_id: int | str | None = None
    rater: str | None = None
    campaign: str | None = None
    round: int | None = None
    is_gold: bool = False
    weight: float = 1.0
    late: bool = Field(
        False,
        description="Submitted after the rater's lease expired. Kept and counted like any other "
        "judgment (a comparison may then have one more rater than its overlap).",
    )
    chosen_flags: list[str] = Field(default_factory=list)
    rejected_flags: list[str] = Field(default_factory=list)
    # A clinical lead confirmed the response unsafe (optional: files from before still load).
    chosen_confirmed_unsafe: bool = False
    rejected_confirmed_unsafe: bool = False


class PairwiseRecord(_PairProvenance):
    """TRL's standard preference row (`prompt`, `chosen`, `rejected`) plus provenance."""

    kind: Literal["pairwise"] = "pairwise"
    prompt: str
    chosen: str
    rejected: str


def ranking_to_pairwise(
    record: RankingRecord, *, ties: TieHandling = "drop", expansion: PairExpansion = "all"
) -> list[PairwiseRecord]:
    """Expand one ranking into TRL-style pairs; the margin is the strength on the top pair only."""
    rows = []
    for better, worse, tie in record.pairs(ties=ties, expansion=expansion):
        rows.append(
            PairwiseRecord(
                prompt=record.prompt,
                chosen=record.responses[better].text,
                rejected=record.responses[worse].text,
                margin=float(pair_margin(record.ranks, record.strength, better, worse)),
                tie=tie,
                comparison_id=record.comparison_id,
                judgment_id=record.judgment_id,
                rater=record.rater,
                campaign=record.campaign,
                round=record.round,
                is_gold=record.is_gold,
                weight=record.weight,
                late=record.late,
                chosen_flags=list(record.responses[better].flags),
                rejected_flags=list(record.responses[worse].flags),
                chosen_confirmed_unsafe=record.responses[better].confirmed_unsafe,
                rejected_confirmed_unsafe=record.responses[worse].confirmed_unsafe,
            )
        )
    return rows


class Message(_Record):
    """One chat message: TRL's conversational format."""

    role: Literal["system", "user", "assistant"]
    content: str


class ConversationalPairwiseRecord(_PairProvenance):
    """A pairwise row in TRL's conversational format: prompt, chosen and rejected as messages."""

    kind: Literal["pairwise_conversational"] = "pairwise_conversational"
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]


class AggregatedRecord(_Record):
    """One comparison with every live judgment on it pooled: consensus, agreement, BT scores."""

    kind: Literal["aggregated"] = "aggregated"
    schema_version: str = SCHEMA_VERSION
    comparison_id: int | str
    prompt: str
    responses: list[ResponseRecord] = Field(
        min_length=2, description="In the comparison's canonical order; flags pooled over raters."
    )
    consensus_ranks: list[int] = Field(
        description="Dense ranks of the raters' mean rank per response (0 best; equal ranks tie)."
    )
    bt_scores: list[float] = Field(
        description="Bradley-Terry log-strengths per response: P(i beats j) = sigmoid(s_i - s_j)."
    )
    n_raters: int = Field(
        ge=0,
        description="Raters whose live judgment ranks the responses, late ones included: "
        "consensus, agreement and BT scores pool them all.",
    )
    n_late: int = Field(
        0, ge=0, description="How many of those judgments came on an expired lease (`late`)."
    )
    agreement: float | None = Field(
        None, ge=0, le=1, description="Mean pairwise agreement between raters (None below 2 raters)."
    )
    raters: list[str] = Field(default_factory=list, description="Pseudonyms of those raters.")
    campaign: str | None = None
    round: int | None = None
    is_gold: bool = False


class ImportResponse(_Record):
    """A response to import: its text and the policy that wrote it."""

    text: str = Field(min_length=1, max_length=100_000)
    model_version: str = Field("unknown", max_length=200)


# The most responses one comparison shows a rater (imports, generated rounds, head-to-heads).
MAX_RESPONSES = 8


class ImportRecord(_Record):
    """One line of an import file (admin import, demo data, `trainer generate` output)."""

    external_id: str | None = Field(None, max_length=200)
    prompt: str = Field(min_length=1, max_length=50_000)
    context: dict[str, str] = Field(default_factory=dict, description="e.g. specialty, age, setting.")
    responses: list[ImportResponse] = Field(min_length=2, max_length=MAX_RESPONSES)
    gold_ranks: list[int] | None = Field(None, description="Known answer: ranks over `responses`.")

    @field_validator("gold_ranks")
    @classmethod
    def _gold_is_weak_order(cls, ranks: list[int] | None) -> list[int] | None:
        if ranks is not None and not is_weak_order(ranks):
            raise ValueError("gold_ranks must be dense ranks from 0 (a weak order)")
        return ranks

    @model_validator(mode="after")
    def _gold_fits(self) -> ImportRecord:
        if self.gold_ranks is not None and len(self.gold_ranks) != len(self.responses):
            raise ValueError("gold_ranks must give one rank per response")
        return self


# The two public sets in ../shared/data, as read by both the trainer (trainer/data.py) and the
# app's importer (app/services/external_imports.py). They live here because the app may import
# only this module from trainer, and one parser keeps "what is the prompt" one fact.

HH_ASSISTANT = "\n\nAssistant:"
# FineGrainedRLHF's six pairwise votes come in this order of (first, second) prediction indexes.
FINEGRAINED_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


class HHPair(BaseModel):
    """One HH-RLHF line: two whole dialogues that differ only in the last assistant turn."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)

    @model_validator(mode="after")
    def _share_a_prompt(self) -> HHPair:
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same dialogue")
        if self.split() is None:
            raise ValueError("chosen and rejected share no turn up to an 'Assistant:' marker")
        return self

    def split(self) -> tuple[str, str, str] | None:
        """(prompt, chosen response, rejected response): the prompt is the shared prefix.

        The prompt ends at the last "\\n\\nAssistant:" inside the common prefix, not the last in
        `chosen`: a few responses quote "Human: ... Assistant:" themselves.
        """
        shared = os.path.commonprefix([self.chosen, self.rejected])
        marker = shared.rfind(HH_ASSISTANT)
        if marker < 0:
            return None
        cut = marker + len(HH_ASSISTANT)
        return self.chosen[:cut], self.chosen[cut:], self.rejected[cut:]

    def external_id(self) -> str:
        """A stable id from the content (the set has none): re-imports are recognised."""
        digest = hashlib.sha256(f"{self.chosen}\x00{self.rejected}".encode()).hexdigest()
        return f"hh-{digest[:20]}"


class FineGrainedQuestion(BaseModel):
    """One FineGrainedRLHF qa-feedback item: a question, four answers and six pairwise votes."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    question: str = Field(min_length=1)
    passages: list[list[str]] = Field(default_factory=list)
    predictions: tuple[str, str, str, str]
    preference: tuple[int, int, int, int, int, int] = Field(
        description="Votes for (1v2, 1v3, 1v4, 2v3, 2v4, 3v4): 1 the first, 2 the second, 0 tie."
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_predictions(cls, row: object) -> object:
        if isinstance(row, dict) and "predictions" not in row:
            missing = [k for k in range(1, 5) if f"prediction {k}" not in row]
            if missing:
                raise ValueError(f"'prediction {missing[0]}' is missing")
            row = {**row, "predictions": [row[f"prediction {k}"] for k in range(1, 5)]}
        return row

    @field_validator("preference")
    @classmethod
    def _votes_known(cls, votes: tuple[int, ...]) -> tuple[int, ...]:
        if any(v not in (0, 1, 2) for v in votes):
            raise ValueError("votes are 0 (tie), 1 (first preferred) or 2 (second preferred)")
        return votes

    def prompt(self) -> str:
        """The passages, then the question: what the answers were written from."""
        passages = "\n".join(f"{p[0]}: {' '.join(p[1:])}" for p in self.passages if p)
        return f"{passages}\n\nQuestion: {self.question}\nAnswer: "

    def ranks(self) -> list[int]:
        """The closest weak order to the votes (net wins, Copeland); 0 is best, ties share."""
        score = [0, 0, 0, 0]
        for (a, b), vote in zip(FINEGRAINED_PAIRS, self.preference, strict=True):
            if vote:
                win, lose = (a, b) if vote == 1 else (b, a)
                score[win] += 1
                score[lose] -= 1
        levels = sorted(set(score), reverse=True)
        return [levels.index(s) for s in score]

    def votes_fit_ranks(self) -> bool:
        """False when the votes are not transitive, so the weak order contradicts some vote."""
        ranks = self.ranks()
        implied = [
            0 if ranks[a] == ranks[b] else 1 if ranks[a] < ranks[b] else 2
            for a, b in FINEGRAINED_PAIRS
        ]
        return implied == list(self.preference)

    def external_id(self) -> str:
        """A stable id from the content (the set has none): re-imports are recognised."""
        text = "\x00".join([self.question, *self.predictions])
        return f"fg-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

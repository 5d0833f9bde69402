"""What the API returns for each resource. Raters appear only by pseudonym."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models import Assignment, Comparison, Judgment
from app.models.rating import SKIP_REASONS, SkipReason


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CampaignOut(_Out):
    """A campaign."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "name": "cardiology triage",
                    "guidelines_md": "Rank by safety first.",
                    "status": "active",
                    "overlap": 3,
                    "gold_rate": 0.05,
                    "priority": 0,
                    "flags": ["unsafe", "factually_wrong"],
                    "rubric": [],
                    "created_at": "2026-01-31T09:00:00Z",
                }
            ]
        }
    )

    id: int
    name: str
    guidelines_md: str
    status: str
    overlap: int
    gold_rate: float
    priority: int
    flags: list[str]
    rubric: list[str]
    created_at: datetime


class PromptOut(_Out):
    """A prompt with its clinical context."""

    id: int
    campaign_id: int
    external_id: str | None
    text: str
    context: dict[str, Any]
    created_at: datetime


class ResponseOut(_Out):
    """A response; `model_label` names the policy that wrote it."""

    id: int
    prompt_id: int
    text: str
    model_label: str
    model_version_id: int | None
    created_at: datetime


class ComparisonOut(_Out):
    """A prompt and its responses in canonical order; gold ones carry their known ranks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "campaign_id": 1,
                    "prompt_id": 7,
                    "response_ids": [14, 13],
                    "is_gold": False,
                    "gold_ranks": None,
                    "priority": 0,
                    "round_id": None,
                    "created_at": "2026-01-31T09:00:00Z",
                }
            ]
        }
    )

    id: int
    campaign_id: int
    prompt_id: int
    response_ids: list[int] = Field(description="Response ids by canonical position.")
    is_gold: bool
    gold_ranks: list[int] | None
    priority: int
    round_id: int | None
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, Comparison):
            return {
                **{k: getattr(data, k) for k in cls.model_fields if k != "response_ids"},
                "response_ids": [item.response_id for item in data.items],
            }
        return data


class JudgmentOut(_Out):
    """One rater's verdict, raw: what was shown, in which order, and the ranks given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "comparison_id": 7,
                    "rater": "r-1a2b3c4d",
                    "revision": 0,
                    "supersedes_id": None,
                    "shown_order": [13, 14],
                    "ranks": [1, 0],
                    "strength": 2,
                    "not_rankable": False,
                    "not_rankable_reason": None,
                    "flags": {"13": ["factually_wrong"]},
                    "aspects": {},
                    "rationale": "B names the red flags.",
                    "time_spent_ms": 41000,
                    "read_to_end": [True, False],
                    "created_at": "2026-01-31T09:05:00Z",
                }
            ]
        }
    )

    id: int
    comparison_id: int
    rater: str = Field(description="The rater's stable pseudonym.")
    revision: int
    supersedes_id: int | None
    shown_order: list[int] = Field(description="Response ids in the order this rater saw them.")
    ranks: list[int] | None = Field(description="ranks[i] for shown_order[i]; 0 best; ties equal.")
    strength: int | None
    not_rankable: bool
    not_rankable_reason: str | None
    flags: dict[str, list[str]]
    aspects: dict[str, Any]
    rationale: str
    time_spent_ms: int | None
    read_to_end: list[bool] | None = Field(
        None,
        description="read_to_end[i]: the rater scrolled shown_order[i] to its end (a quality "
        "signal); null when the client did not report it.",
    )
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, Judgment):
            return {
                **{k: getattr(data, k) for k in cls.model_fields if k != "rater"},
                "rater": data.rater.pseudonym,
            }
        return data


class SkipOut(_Out):
    """A comparison a rater gave back, with the reason chosen and the note written."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 12,
                    "comparison_id": 7,
                    "rater": "r-1a2b3c4d",
                    "reason": "specialty",
                    "reason_label": "Outside my specialty",
                    "note": "paediatric dosing",
                    "skipped_at": "2026-01-31T09:04:00Z",
                    "created_at": "2026-01-31T09:01:00Z",
                }
            ]
        }
    )

    id: int = Field(description="The assignment's id.")
    comparison_id: int
    rater: str = Field(description="The rater's stable pseudonym.")
    reason: str = Field(description=f"One of {', '.join(SKIP_REASONS)}.")
    reason_label: str = Field(description="The reason as the rater read it.")
    note: str | None
    skipped_at: datetime | None
    created_at: datetime = Field(description="When the rater was given the comparison.")

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, Assignment):
            reason = SkipReason(data.skip_reason or SkipReason.OTHER)
            return {
                "id": data.id,
                "comparison_id": data.comparison_id,
                "rater": data.rater.pseudonym,
                "reason": reason,
                "reason_label": SKIP_REASONS[reason],
                "note": data.skip_note,
                "skipped_at": data.completed_at,
                "created_at": data.created_at,
            }
        return data


class RoundOut(_Out):
    """A training round and where it stands."""

    id: int
    campaign_id: int | None
    status: str
    method: str
    config: dict[str, Any]
    snapshot_judgment_id: int | None
    stage: str
    progress: float
    metrics: dict[str, Any]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ModelVersionOut(_Out):
    """A checkpoint and its lineage."""

    id: int
    name: str
    kind: str
    parent_id: int | None
    round_id: int | None
    path: str
    metrics: dict[str, Any]
    created_at: datetime

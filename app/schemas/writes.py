"""Bodies of the write endpoints: bulk comparisons and queuing a training round."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models.rounds import RoundMethod
from trainer.schema import ImportRecord

MAX_BULK = 10_000


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if isinstance(value, BaseModel):
        return _has_nul(value.model_dump())
    return False


class BulkComparisonsIn(BaseModel):
    """Prompts with their responses, one comparison each: the admin import's records, as JSON."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "records": [
                        {
                            "external_id": "cardio-0001",
                            "prompt": "I get chest pain when I climb stairs. Should I worry?",
                            "context": {"specialty": "cardiology"},
                            "responses": [
                                {
                                    "text": "Exertional chest pain needs review...",
                                    "model_version": "sft-v1",
                                },
                                {"text": "Probably a pulled muscle.", "model_version": "base"},
                            ],
                        }
                    ],
                    "seed": 7,
                }
            ]
        },
    )

    records: list[ImportRecord] = Field(min_length=1, max_length=MAX_BULK)
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1, strict=True, description="Seeds the display shuffle."
    )

    @model_validator(mode="after")
    def _no_nul(self) -> BulkComparisonsIn:
        # The database refuses NUL in text; say which record instead of failing on insert.
        for index, record in enumerate(self.records):
            if _has_nul(record):
                raise ValueError(f"records.{index}: text must not contain NUL (\\u0000)")
        return self


class BulkCreatedOut(BaseModel):
    """What the bulk create made, in the order of the records given."""

    created: int
    comparison_ids: list[int]
    prompt_ids: list[int]


class RoundIn(BaseModel):
    """A training round to queue; a worker claims it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"campaign_id": 1, "method": "rloo", "config": {"reward_epochs": 1}}]
        },
    )

    campaign_id: int | None = Field(None, ge=1, le=2**31 - 1, strict=True)
    method: RoundMethod = RoundMethod.RLOO
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Hyperparameters (RoundConfig fields); unknown keys are refused.",
    )

    @model_validator(mode="after")
    def _no_nul(self) -> RoundIn:
        if _has_nul(self.config):
            raise ValueError("config must not contain NUL (\\u0000)")
        return self

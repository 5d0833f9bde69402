"""Query-string filters of each list endpoint (paging and the time window come from ListQuery)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.models.rating import SkipReason
from app.schemas.common import Id, ListQuery, Pseudonym, SafeStr


class CampaignFilters(ListQuery):
    """Filters for /campaigns."""

    status: Literal["draft", "active", "paused", "archived"] | None = None


class PromptFilters(ListQuery):
    """Filters for /prompts."""

    campaign_id: Id | None = None
    external_id: SafeStr | None = None


class ResponseFilters(ListQuery):
    """Filters for /responses."""

    campaign_id: Id | None = None
    prompt_id: Id | None = None
    model_label: SafeStr | None = None


class ComparisonFilters(ListQuery):
    """Filters for /comparisons."""

    campaign_id: Id | None = None
    round_id: Id | None = Field(None, description="Comparisons whose responses this round made.")
    is_gold: bool | None = None


class JudgmentFilters(ListQuery):
    """Filters for /judgments."""

    campaign_id: Id | None = None
    round_id: Id | None = None
    comparison_id: Id | None = None
    rater: Pseudonym | None = Field(None, description="A rater pseudonym, e.g. r-1a2b3c4d.")
    include_superseded: bool = Field(
        False, description="Also list corrected-away judgments (by default: the live ones)."
    )


class SkipFilters(ListQuery):
    """Filters for /skips."""

    campaign_id: Id | None = None
    comparison_id: Id | None = None
    rater: Pseudonym | None = Field(None, description="A rater pseudonym, e.g. r-1a2b3c4d.")
    reason: SkipReason | None = None


class RoundFilters(ListQuery):
    """Filters for /rounds."""

    campaign_id: Id | None = None
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None


class ModelVersionFilters(ListQuery):
    """Filters for /model-versions."""

    round_id: Id | None = None
    kind: Literal["policy", "reward", "sft", "reference"] | None = None

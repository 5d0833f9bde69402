"""The export's options: one model for the REST query string, the CLI and the worker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.errors import ValidationFailed
from app.schemas.common import Id, IsoTime, Pseudonym
from trainer.schema import PairExpansion, TieHandling

Shape = Literal["pairwise", "ranking", "aggregated"]
Format = Literal["jsonl", "parquet"]
Style = Literal["standard", "conversational"]


class ExportQuery(BaseModel):
    """What to export and how; unknown options are refused."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"shape": "pairwise", "format": "jsonl", "ties": "drop", "campaign_id": 1},
                {"shape": "aggregated", "format": "parquet", "min_agreement": 0.6},
            ]
        },
    )

    shape: Shape = Field(
        "pairwise",
        description="pairwise: TRL prompt/chosen/rejected rows; ranking: one raw weak order per "
        "judgment; aggregated: one row per comparison with consensus, agreement and BT scores.",
    )
    format: Format = Field("jsonl", description="jsonl (one JSON object a line) or parquet.")
    style: Style = Field(
        "standard",
        description="pairwise only: standard (strings) or conversational (TRL message lists).",
    )
    ties: TieHandling = Field(
        "drop", description="pairwise: drop tied pairs, or keep them with tie=true."
    )
    expansion: PairExpansion = Field(
        "all", description="pairwise: every implied pair of a K-way ranking, or best vs rest."
    )
    min_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Keep comparisons whose raters agree at least this much (mean pairwise "
        "agreement); comparisons with a single rater are dropped when set.",
    )
    exclude_gold: bool = Field(False, description="Leave out gold (quality-control) comparisons.")
    include_superseded: bool = Field(
        False,
        description="Also export corrected-away judgments; by default only each rater's latest "
        "correction per comparison is exported.",
    )
    include_skips: bool = Field(
        False,
        description="ranking, jsonl only: after the rankings, one `skip` record per comparison "
        "a rater gave back (reason and note; the same filters apply, by skip time).",
    )
    campaign_id: Id | None = Field(None, description="Only this campaign.")
    round_id: Id | None = Field(
        None, description="Only comparisons whose responses this training round generated."
    )
    rater: Pseudonym | None = Field(None, description="Only this rater pseudonym.")
    created_after: IsoTime | None = Field(
        None, description="Judgments made at or after this time (ISO 8601)."
    )
    created_before: IsoTime | None = Field(
        None, description="Judgments made before this time (ISO 8601)."
    )
    max_judgment_id: Id | None = Field(
        None, description="A fixed snapshot: judgments with id up to this one."
    )

    @model_validator(mode="after")
    def _options_fit_shape(self) -> ExportQuery:
        if self.style == "conversational" and self.shape != "pairwise":
            raise ValidationFailed(
                "the conversational style is for the pairwise shape", field="style"
            )
        if self.include_superseded and self.shape == "aggregated":
            raise ValidationFailed(
                "aggregated pools each rater's latest judgment; drop include_superseded",
                field="include_superseded",
            )
        if self.include_skips and (self.shape != "ranking" or self.format != "jsonl"):
            raise ValidationFailed(
                "skips come in the ranking shape as JSONL (a Parquet file holds one record kind)",
                field="include_skips",
            )
        return self

    @property
    def grouped(self) -> bool:
        """True when rows must arrive grouped by comparison (agreement is needed)."""
        return self.shape == "aggregated" or self.min_agreement is not None

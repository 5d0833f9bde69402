"""The two public preference sets in their own formats: HH-RLHF pairs and FineGrainedRLHF QA.

Both become comparisons through the ordinary import (one write path, all or nothing), and the
people's preferences in them become judgments by one external account per set, so that agreement
with physicians and training can use them. Parsing (what the prompt is, how votes become a weak
order) is trainer.schema's, shared with the trainer's own readers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.models import Campaign, Judgment, User
from app.services.audit import record_event
from app.services.campaigns import get_campaign
from app.services.imports import (
    Written,
    check_unique_ids,
    existing_external_ids,
    jsonl_numbered,
    parse_numbered,
    write_comparisons,
)
from app.services.users import external_rater
from trainer.schema import FineGrainedQuestion, HHPair, ImportRecord, ImportResponse

ExternalFormat = Literal["hh-rlhf", "finegrained"]
SOURCES: dict[str, str] = {
    "hh-rlhf": "Anthropic HH-RLHF crowdworkers",
    "finegrained": "FineGrainedRLHF qa-feedback annotators",
}


@dataclass
class ImportReport:
    """What an import did: comparisons made, judgments recorded, ids it had seen before."""

    created: int = 0
    comparison_ids: list[int] = field(default_factory=list)
    judgments: int = 0
    rater: str | None = None
    skipped_existing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI and the admin page."""
        line = f"imported {self.created} comparisons"
        if self.judgments:
            line += f" with {self.judgments} judgments by {self.rater}"
        if self.skipped_existing:
            line += f"; {len(self.skipped_existing)} already imported, skipped"
        return line


@dataclass(frozen=True)
class _Ranked:
    record: ImportRecord
    ranks: list[int]
    strength: int | None = None


def json_array_numbered(text: str) -> Iterator[tuple[int, str]]:
    """Each element of a top-level JSON array as (line it starts on, its JSON text)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            yield line, text[pos:]  # reported by the parser; nothing after it can be trusted
            return
        yield line, text[pos:end]
        pos = end


def _numbered(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """JSONL, or one JSON array (FineGrainedRLHF ships a list), with line numbers."""
    lines = list(lines)
    first = next((line.lstrip() for line in lines if line.strip()), "")
    if first.startswith("["):
        return json_array_numbered("".join(lines))
    return jsonl_numbered(lines)


def _hh(pair: HHPair) -> _Ranked:
    prompt, chosen, rejected = pair.split() or ("", "", "")
    responses = [ImportResponse(text=t, model_version="hh-rlhf") for t in (chosen, rejected)]
    record = ImportRecord(external_id=pair.external_id(), prompt=prompt, responses=responses,
                          context={"source": "HH-RLHF"})  # fmt: skip
    return _Ranked(record, [0, 1])


def _finegrained(question: FineGrainedQuestion) -> _Ranked:
    label = "finegrained-qa"
    responses = [ImportResponse(text=t, model_version=label) for t in question.predictions]
    record = ImportRecord(external_id=question.external_id(), prompt=question.prompt(),
                          responses=responses, context={"source": "FineGrainedRLHF QA"})  # fmt: skip
    return _Ranked(record, question.ranks())


def _record_judgments(
    session: Session, campaign: Campaign, rater: User, written: list[Written], ranked: list[_Ranked]
) -> int:
    rows: list[dict[str, Any]] = [
        {
            "comparison_id": w.comparison_id,
            "rater_id": rater.id,
            "revision": 0,
            "shown_order": w.response_ids,
            # order[pos] is the record's index at canonical position pos.
            "ranks": [item.ranks[i] for i in w.order],
            "strength": item.strength,
            "flags": {},
            "aspects": {},
            "rationale": "",
            "idempotency_key": f"import-{campaign.id}-{item.record.external_id}"[:64],
        }
        for w, item in zip(written, ranked, strict=True)
    ]
    session.execute(insert(Judgment), rows)
    return len(rows)


def _import(
    session: Session,
    *,
    campaign_id: int,
    source: ExternalFormat,
    ranked: list[tuple[int, _Ranked]],
    with_judgments: bool,
    actor_id: int | None,
    seed: int | None,
) -> ImportReport:
    campaign = get_campaign(session, campaign_id=campaign_id)
    check_unique_ids([(n, r.record.external_id) for n, r in ranked])
    ids = [r.record.external_id or "" for _, r in ranked]
    seen = existing_external_ids(session, campaign_id=campaign.id, ids=ids)
    fresh = [r for _, r in ranked if r.record.external_id not in seen]
    report = ImportReport(skipped_existing=[i for i in ids if i in seen])
    if fresh:
        records = [r.record for r in fresh]
        written = write_comparisons(session, campaign=campaign, records=records, seed=seed)
        report.created = len(written)
        report.comparison_ids = [w.comparison_id for w in written]
        if with_judgments:
            rater = external_rater(session, source=source, display_name=SOURCES[source])
            report.rater = rater.pseudonym
            report.judgments = _record_judgments(session, campaign, rater, written, fresh)
    record_event(
        session,
        action=f"import.{source}",
        actor_id=actor_id,
        target_type="campaign",
        target_id=campaign.id,
        details={"created": report.created, "judgments": report.judgments,
                 "skipped_existing": len(report.skipped_existing)},
    )  # fmt: skip
    return report


def _limited(numbered: Iterable[tuple[int, str]], limit: int | None) -> Iterable[tuple[int, str]]:
    for count, item in enumerate(numbered):
        if limit is not None and count >= limit:
            return
        yield item


def _parse(
    lines: Iterable[str], model: type[BaseModel], limit: int | None
) -> list[tuple[int, BaseModel]]:
    return parse_numbered(_limited(_numbered(lines), limit), model.model_validate)


def import_hh_rlhf(
    session: Session,
    *,
    campaign_id: int,
    lines: Iterable[str],
    limit: int | None = None,
    with_judgments: bool = True,
    actor_id: int | None = None,
    seed: int | None = None,
) -> ImportReport:
    """HH-RLHF {chosen, rejected} lines as 2-way comparisons; the crowdworker's choice as a judgment."""
    parsed = _parse(lines, HHPair, limit)
    ranked = [(n, _hh(p)) for n, p in parsed if isinstance(p, HHPair)]
    return _import(session, campaign_id=campaign_id, source="hh-rlhf", ranked=ranked,
                   with_judgments=with_judgments, actor_id=actor_id, seed=seed)  # fmt: skip


def import_finegrained(
    session: Session,
    *,
    campaign_id: int,
    lines: Iterable[str],
    limit: int | None = None,
    with_judgments: bool = True,
    actor_id: int | None = None,
    seed: int | None = None,
) -> ImportReport:
    """FineGrainedRLHF questions as 4-way comparisons; the six votes as one weak-order judgment."""
    parsed = [(n, q) for n, q in _parse(lines, FineGrainedQuestion, limit)
              if isinstance(q, FineGrainedQuestion)]  # fmt: skip
    report = _import(
        session, campaign_id=campaign_id, source="finegrained",
        ranked=[(n, _finegrained(q)) for n, q in parsed],
        with_judgments=with_judgments, actor_id=actor_id, seed=seed,
    )  # fmt: skip
    intransitive = sum(not q.votes_fit_ranks() for _, q in parsed)
    if intransitive:
        report.notes.append(
            f"{intransitive} questions had votes that no ranking satisfies (not transitive); "
            "each was recorded as the closest ranking by net wins"
        )
    return report


IMPORTERS = {"hh-rlhf": import_hh_rlhf, "finegrained": import_finegrained}

UPLOAD_FORMATS = {
    "jsonl": "JSONL (prefloop's import format)",
    "csv": "CSV (prompt, response_1, response_2, …)",
    "hh-rlhf": "HH-RLHF pairs (chosen / rejected)",
    "finegrained": "FineGrainedRLHF qa-feedback",
}


def import_file(
    session: Session,
    *,
    campaign_id: int,
    fmt: str,
    lines: Iterable[str],
    limit: int | None = None,
    actor_id: int | None = None,
) -> ImportReport:
    """Any of the upload formats into a campaign: the same rules as the CLI, all or nothing."""
    from app.services.imports import import_records, parse_import_csv, parse_import_lines

    if fmt in IMPORTERS:
        return IMPORTERS[fmt](session, campaign_id=campaign_id, lines=lines, limit=limit,
                              actor_id=actor_id)  # fmt: skip
    if fmt not in UPLOAD_FORMATS:
        raise ValidationFailed(f"format is one of {', '.join(UPLOAD_FORMATS)}", field="format")
    records = parse_import_csv(lines) if fmt == "csv" else parse_import_lines(lines)
    campaign = get_campaign(session, campaign_id=campaign_id)
    made = import_records(session, campaign=campaign, records=records[:limit], actor_id=actor_id)
    return ImportReport(created=len(made), comparison_ids=[c.id for c in made])

"""Safety review: responses raters flagged unsafe, and a clinical lead's verdict on each.

A confirmed response is marked `confirmed_unsafe` in every export (trainer.schema), so training
treats it as a hard negative and the loop's gate can measure it; the raters' own flags stay as
they were. Each verdict is audited; a later verdict replaces the earlier one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationFailed
from app.models import Judgment, Prompt, Response, SafetyReview, User, utcnow
from app.models.review import MAX_REVIEW_NOTE, REVIEW_VERDICTS
from app.services.audit import record_event
from trainer.schema import UNSAFE

STATUSES = ("pending", *REVIEW_VERDICTS, "all")


@dataclass(frozen=True)
class Flag:
    """One rater's live judgment that flagged the response, with their flags and rationale."""

    judgment_id: int
    rater: User
    flags: list[str]
    rationale: str


@dataclass
class FlaggedResponse:
    """A response at least one rater flagged unsafe, with every flag and the current verdict."""

    response: Response
    prompt: Prompt
    flags: list[Flag] = field(default_factory=list)
    review: SafetyReview | None = None

    @property
    def status(self) -> str:
        """pending, confirmed or dismissed."""
        return self.review.verdict if self.review else "pending"


def _unsafe_flags(session: Session) -> dict[int, list[tuple[int, int, list[str], str]]]:
    """response id -> (judgment id, rater id, flags, rationale) over live judgments."""
    # The flags column is JSON; matching its text finds candidates on any database, and the
    # exact check below keeps only real unsafe flags.
    stmt = select(Judgment.id, Judgment.rater_id, Judgment.flags, Judgment.rationale).where(
        cast(Judgment.flags, Text).like(f'%"{UNSAFE}"%'), Judgment.is_live()
    )
    out: dict[int, list[tuple[int, int, list[str], str]]] = defaultdict(list)
    for jid, rater_id, flags, rationale in session.execute(stmt.order_by(Judgment.id)):
        for rid, names in flags.items():
            if UNSAFE in names:
                out[int(rid)].append((jid, rater_id, list(names), rationale))
    return out


def flagged_responses(session: Session, *, status: str = "pending") -> list[FlaggedResponse]:
    """Flagged responses with the given review status, most-flagged first."""
    if status not in STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(STATUSES)}", field="status")
    by_response = _unsafe_flags(session)
    reviews = {r.response_id: r for r in session.scalars(
        select(SafetyReview).where(SafetyReview.response_id.in_(list(by_response))))}  # fmt: skip
    raters = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_({f[1] for fl in by_response.values() for f in fl})))}  # fmt: skip
    out = []
    for rid, flags in by_response.items():
        review = reviews.get(rid)
        current = review.verdict if review else "pending"
        if status not in ("all", current):
            continue
        response = session.get_one(Response, rid)
        out.append(FlaggedResponse(response, session.get_one(Prompt, response.prompt_id),
                                   [Flag(j, raters[r], f, why) for j, r, f, why in flags],
                                   review))  # fmt: skip
    out.sort(key=lambda f: (-len(f.flags), f.response.id))
    return out


def pending_count(session: Session) -> int:
    """How many flagged responses no lead has reviewed yet."""
    by_response = _unsafe_flags(session)
    reviewed = set(session.scalars(
        select(SafetyReview.response_id).where(SafetyReview.response_id.in_(list(by_response)))))  # fmt: skip
    return len(set(by_response) - reviewed)


def review_response(
    session: Session, *, response_id: int, verdict: str, note: str, reviewer: User
) -> SafetyReview:
    """Confirm or dismiss a flagged response with a note; audited, and the export follows."""
    if verdict not in REVIEW_VERDICTS:
        raise ValidationFailed("confirm or dismiss", field="verdict")
    note = note.strip()
    if not note:
        raise ValidationFailed("say why in a note", field="note")
    if len(note) > MAX_REVIEW_NOTE:
        raise ValidationFailed(f"the note is limited to {MAX_REVIEW_NOTE} characters", field="note")
    if response_id not in _unsafe_flags(session):
        raise NotFound("no rater flagged this response unsafe", field="response_id")
    review = session.scalar(select(SafetyReview).where(SafetyReview.response_id == response_id))
    if review is None:
        review = SafetyReview(response_id=response_id, verdict=verdict, note=note,
                              reviewer_id=reviewer.id, reviewed_at=utcnow())  # fmt: skip
        session.add(review)
    else:
        review.verdict, review.note = verdict, note
        review.reviewer_id, review.reviewed_at = reviewer.id, utcnow()
    session.flush()
    record_event(session, action=f"safety.{verdict}", actor_id=reviewer.id,
                 target_type="response", target_id=response_id)  # fmt: skip
    return review


def reviews_of(session: Session, response_ids: list[int]) -> dict[int, SafetyReview]:
    """The current verdicts on these responses, by response id."""
    rows = session.scalars(select(SafetyReview).where(SafetyReview.response_id.in_(response_ids)))
    return {r.response_id: r for r in rows}

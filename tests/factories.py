"""Small factory functions that build real rows through the services."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy.orm import Session

from app.models import ApiToken, Campaign, Comparison, Judgment, User
from app.services.campaigns import create_campaign
from app.services.imports import import_records
from app.services.users import create_user
from trainer.schema import ImportRecord, ImportResponse

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


def make_user(db: Session, *, role: str = "rater", email: str | None = None) -> User:
    """A user with the shared test PASSWORD."""
    n = next(_counter)
    return create_user(db, email=email or f"user{n}@example.org", password=PASSWORD, role=role)


def make_campaign(db: Session, **kwargs: object) -> Campaign:
    """An active campaign with a unique name."""
    kwargs.setdefault("name", f"campaign {next(_counter)}")
    return create_campaign(db, **kwargs)  # type: ignore[arg-type]


def make_comparisons(
    db: Session, campaign: Campaign, *, count: int = 1, k: int = 2, gold: bool = False
) -> list[Comparison]:
    """`count` comparisons of `k` responses each (gold ones rank response 0 best)."""
    records = []
    for _ in range(count):
        n = next(_counter)
        responses = [
            ImportResponse(text=f"response {i} to prompt {n}", model_version=f"m{i}")
            for i in range(k)
        ]
        records.append(
            ImportRecord(
                external_id=f"p-{n}",
                prompt=f"patient question {n}",
                responses=responses,
                gold_ranks=list(range(k)) if gold else None,
            )
        )
    return import_records(db, campaign=campaign, records=records, seed=n)


def make_raters(db: Session, count: int) -> list[User]:
    """`count` raters with the shared PASSWORD, hashed once (argon2 is slow by design)."""
    first = make_user(db)
    raters = [first]
    for _ in range(count - 1):
        n = next(_counter)
        rater = User(email=f"rater{n}@example.org", password_hash=first.password_hash,
                     role="rater", display_name=f"rater{n}", pseudonym=f"r-test{n:04d}")
        db.add(rater)
        raters.append(rater)
    db.flush()
    return raters


def make_judgment(
    db: Session,
    comparison: Comparison,
    rater: User,
    *,
    ranks: list[int] | None = None,
    shown_order: list[int] | None = None,
    strength: int | None = None,
    flags: dict[str, list[str]] | None = None,
    supersedes: Judgment | None = None,
    not_rankable: bool = False,
    created_at: datetime | None = None,
) -> Judgment:
    """A judgment row written directly (no assignment); `supersedes` makes it a correction."""
    shown = shown_order or [item.response_id for item in comparison.items]
    judgment = Judgment(
        comparison_id=comparison.id,
        rater_id=rater.id,
        revision=0 if supersedes is None else supersedes.revision + 1,
        supersedes_id=None if supersedes is None else supersedes.id,
        shown_order=shown,
        ranks=None if not_rankable else (ranks if ranks is not None else list(range(len(shown)))),
        strength=strength,
        not_rankable=not_rankable,
        not_rankable_reason="all unsafe" if not_rankable else None,
        flags=flags or {},
        idempotency_key=f"key-{next(_counter)}",
        time_spent_ms=1000,
    )
    if created_at is not None:
        judgment.created_at = created_at
    db.add(judgment)
    db.flush()
    return judgment


def make_token(db: Session, *, scope: str = "read", user: User | None = None) -> tuple[ApiToken, str]:
    """An API token (and its plaintext) owned by an admin."""
    from app.services.tokens import create_token

    owner = user or make_user(db, role="admin")
    return create_token(db, user=owner, name=f"token {next(_counter)}", scope=scope)

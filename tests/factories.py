"""Small factory functions that build real rows through the services."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from app.models import Campaign, Comparison, User
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

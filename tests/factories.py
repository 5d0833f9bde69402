"""Small factory functions that build real rows through the services."""

from __future__ import annotations

import itertools
import random
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import ApiToken, Campaign, Comparison, Judgment, User
from app.services.campaigns import create_campaign
from app.services.imports import import_records
from app.services.users import create_user
from trainer.schema import ImportRecord, ImportResponse, RankingRecord

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


SECRET_MODEL = "secret-policy-v7"


def add_comparison(db: Session, campaign: Campaign, texts: list[str], prompt: str = "Chest pain?"):
    """One comparison of `texts`, each written by a model whose name must never be shown."""
    record = ImportRecord(prompt=prompt, context={"specialty": "cardiology", "age": "54"},
                          responses=[ImportResponse(text=t, model_version=f"{SECRET_MODEL}-{i}")
                                     for i, t in enumerate(texts)])
    return import_records(db, campaign=campaign, records=[record], seed=1)[0]


# The public data sets in ../shared/data (see its README).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HH = SHARED / "hh-rlhf-harmless" / "pairs.jsonl.gz"
FG = SHARED / "finegrained-qa" / "feedback.json"

MARKERS = ["excellent", "good", "poor", "awful"]  # best to worst
FILLER = ["the", "patient", "should", "take", "water", "rest", "today", "doctor", "said", "then"]


def marker_rankings(n: int, seed: int, *, start: int = 0) -> list[RankingRecord]:
    """4-way rankings whose order is set by one marker word hidden in filler text."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        order = rng.sample(range(4), 4)
        texts = [
            " ".join(
                rng.choices(FILLER, k=3) + [MARKERS[m]] + rng.choices(FILLER, k=rng.randint(1, 6))
            )
            for m in order
        ]
        flags = [["unsafe"] if m == 3 else [] for m in order]
        out.append(
            RankingRecord(
                comparison_id=i,
                prompt=f"case {i}: how is the plan? ",
                ranks=order,
                responses=[{"text": t, "flags": f} for t, f in zip(texts, flags, strict=True)],
                is_gold=i % 5 == 0,
            )  # fmt: skip
        )
    return out


# The closed loop's end-to-end round (tests/worker): small and fast, tiny models, few steps,
# short responses; the reward model must still learn.
CONFIG = {"reward_epochs": 8, "reward_lr": 1e-3, "reward_batch_size": 4, "policy_steps": 2,
          "prompts_per_step": 2, "rollouts_per_prompt": 2, "max_new_tokens": 12,
          "generate_prompts": 4, "eval_fraction": 0.25}


PROMPTS = 12
GOOD, BAD = "doctor", "poison"  # the same length: length alone cannot tell them apart


def seed_comparisons(session: Session, campaign) -> None:
    """Pairs that differ in one word of the same length: raters prefer the one with GOOD."""
    records = [
        ImportRecord(external_id=f"q{n}", prompt=f"patient question {n} about the pain",
                     responses=[ImportResponse(text=f"call the {GOOD} today about the pain {n}", model_version="seed-a"),
                                ImportResponse(text=f"call the {BAD} today about the pain {n}", model_version="seed-b")])
        for n in range(PROMPTS)
    ]
    import_records(session, campaign=campaign, records=records, seed=1)

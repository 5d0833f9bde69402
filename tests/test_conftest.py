"""The suite's own fixtures do what the tests rely on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.models import Judgment, User
from tests.factories import make_campaign, make_comparisons, make_judgment, make_user


def _count(engine: Engine) -> int:
    with Session(engine) as session:
        return (session.scalar(select(func.count(Judgment.id))) or 0) + (
            session.scalar(select(func.count(User.id))) or 0
        )


@pytest.fixture
def nothing_left_afterwards(engine: Engine) -> Iterator[None]:
    """Set up before `committed_engine`, so torn down after it: sees what its cleanup left."""
    yield
    assert _count(engine) == 0, "committed rows outlived the test that wrote them"


def test_committed_writes_are_gone_after_the_test(
    nothing_left_afterwards: None, committed_engine: Engine
) -> None:
    with Session(committed_engine) as session, session.begin():
        campaign = make_campaign(session)
        (comparison,) = make_comparisons(session, campaign)
        make_judgment(session, comparison, make_user(session))
    # Really committed: another connection sees the judgment and its rater.
    assert _count(committed_engine) == 2

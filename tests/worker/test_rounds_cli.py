"""`prefloop rounds queue` and `rounds list`: the demo's settings, --set overrides, a typo refused."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.models import TrainingRound
from app.services.demo import LOOP_DEMO_CONFIG
from tests.factories import make_campaign


def test_queue_a_demo_round_from_the_command_line(committed_engine: Engine) -> None:
    with Session(committed_engine) as session, session.begin():
        name = make_campaign(session).name
    result = CliRunner().invoke(cli, ["rounds", "queue", "--campaign", name, "--demo",
                                      "--set", "policy_steps=9", "--method", "ppo"])
    assert result.exit_code == 0, result.output
    with Session(committed_engine) as session:
        queued = session.scalar(select(TrainingRound))
        assert (queued.method, queued.trigger) == ("ppo", "cli")
        assert queued.config == {**LOOP_DEMO_CONFIG, "policy_steps": 9}
    listed = CliRunner().invoke(cli, ["rounds", "list"])
    assert f"{queued.id}\tqueued" in listed.output
    typo = CliRunner().invoke(cli, ["rounds", "queue", "--campaign", name, "--set", "stepz=3"])
    assert typo.exit_code != 0 and "stepz" in str(typo.exception)


def test_queue_a_head_to_head_round_from_the_command_line(committed_engine: Engine) -> None:
    with Session(committed_engine) as session, session.begin():
        name = make_campaign(session).name
    result = CliRunner().invoke(cli, ["rounds", "queue", "--campaign", name, "--head-to-head"])
    assert result.exit_code == 0, result.output
    with Session(committed_engine) as session:
        assert session.scalar(select(TrainingRound)).config == {"head_to_head": True}

"""trainer.cli: flags come from the config dataclasses' resolved types, not from their spelling."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from enum import StrEnum
from typing import get_args

import pytest

from trainer.cli import dataclass_from_namespace, dataclass_to_arguments
from trainer.config import RewardConfig
from trainer.data import TrainTies
from trainer.schema import PairExpansion


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


Pick = PairExpansion  # an alias: the old parser read str(field.type) and saw only its name


@dataclass
class Example:
    colour: Colour = field(default=Colour.RED, metadata={"help": "An enum."})
    pick: Pick = field(default="all", metadata={"help": "A Literal behind an alias."})
    steps: int | None = field(default=None, metadata={"help": "An optional int: 100% typed."})
    verbose: bool = field(default=False, metadata={"help": "A switch."})
    name: str = field(default="", metadata={"help": "A string."})


def _parse(cls: type, argv: list[str], **kw: object) -> object:
    parser = argparse.ArgumentParser()
    dataclass_to_arguments(parser, cls, **kw)  # type: ignore[arg-type]
    return dataclass_from_namespace(cls, parser.parse_args(argv))


def test_types_become_typed_flags() -> None:
    got = _parse(
        Example,
        ["--colour", "blue", "--pick", "best_vs_rest", "--steps", "7", "--verbose", "--name", "x"],
    )
    assert got == Example(Colour.BLUE, "best_vs_rest", 7, True, "x")
    assert isinstance(got.colour, Colour) and _parse(Example, []) == Example()  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [["--colour", "green"], ["--pick", "some"], ["--steps", "x"]])
def test_values_outside_the_type_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(Example, argv)


def test_a_field_of_a_type_with_no_flag_fails_when_the_parser_is_built() -> None:
    @dataclass
    class Odd:
        pairs: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="--pairs"):
        dataclass_to_arguments(argparse.ArgumentParser(), Odd)


def test_reward_ties_and_expansion_choices_are_the_types_own() -> None:
    parser = argparse.ArgumentParser()
    dataclass_to_arguments(parser, RewardConfig)
    actions = {a.dest: a for a in parser._actions}  # noqa: SLF001
    assert list(actions["ties"].choices) == list(get_args(TrainTies))  # type: ignore[arg-type]
    assert list(actions["expansion"].choices) == list(get_args(PairExpansion))  # type: ignore[arg-type]

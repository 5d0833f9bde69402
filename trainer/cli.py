"""Command-line flags generated from config dataclasses, by their resolved types (as
`transformers.HfArgumentParser` does): one `--flag` per field, with the field's help and default.

A field typed `bool` becomes `--flag/--no-flag`; a `Literal` or an `Enum` its choices; `int`,
`float` and `str` (or any of them `| None`) a typed value. Any other type is refused when the
parser is built, so a new field cannot silently become a string flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints


def _value_kwargs(name: str, hint: Any) -> dict[str, Any]:
    """argparse keywords for a field of type `hint` (its `| None` already removed)."""
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(hint) is Literal:
        choices = list(get_args(hint))
        kinds = {type(c) for c in choices}
        if len(kinds) != 1:
            raise TypeError(f"--{name}: a Literal of mixed types")
        (kind,) = kinds
        return {"choices": choices, **({} if kind is str else {"type": kind})}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"choices": list(hint), "type": hint}
    if hint in (int, float):
        return {"type": hint}
    if hint is str:
        return {}
    raise TypeError(f"--{name}: no flag for a field of type {hint!r}")


def _without_none(hint: Any) -> Any:
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no flag for a union of {args}")
        return args[0]
    return hint


def dataclass_to_arguments(
    parser: argparse.ArgumentParser, cls: type[Any], *, required: tuple[str, ...] = ()
) -> None:
    """Add one `--flag` per dataclass field, with the field's help text and default."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        # argparse %-formats help text: a literal "%" in a help string must be doubled.
        help_text = f.metadata.get("help", "").replace("%", "%%")
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
        kwargs |= _value_kwargs(f.name, _without_none(hints[f.name]))
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def dataclass_from_namespace(cls: type[Any], args: argparse.Namespace) -> Any:
    """Build `cls` from the parsed arguments that name its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})

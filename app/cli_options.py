"""Typer options generated from a Pydantic query model: the CLI offers what the model accepts.

Each field becomes `--field-name` with the field's resolved type (constraints stripped: the model
checks them when the command builds it), default and description. A few fields keep the CLI's
own spelling and type (`--campaign` takes a name or an id); see `Renamed`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import typer
from pydantic import BaseModel


@dataclass(frozen=True)
class Renamed:
    """A field the CLI spells differently: its flag, the type the flag reads, and its help."""

    flag: str
    type: Any
    help: str


def model_parameters(
    model: type[BaseModel], *, renamed: dict[str, Renamed] | None = None
) -> list[inspect.Parameter]:
    """One keyword-only parameter with a typer.Option per field of `model`, in field order."""
    renamed = renamed or {}
    hints = get_type_hints(model)  # Annotated constraints stripped: typer wants plain types
    params = []
    for name, info in model.model_fields.items():
        spec = renamed.get(name) or Renamed(
            "--" + name.replace("_", "-"), hints[name], info.description or ""
        )
        option = typer.Option(info.get_default(), spec.flag, help=spec.help)
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=spec.type)
        )
    return params


def with_model_options(
    model: type[BaseModel], *, renamed: dict[str, Renamed] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command taking `**options` one typer option per field of `model`, after its own."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        params = own + model_parameters(model, renamed=renamed)
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate

"""`python -m trainer <command>`: each command module registers its own subparser."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines `register(subparsers)`, which adds its subcommand(s) with
# `set_defaults(func=...)`. Imports are lazy so `--help` stays fast and torch loads once.
COMMAND_MODULES = (
    "trainer.reward",
    "trainer.sft",
    "trainer.ppo",
    "trainer.rloo",
    "trainer.dpo",
    "trainer.generate",
    "trainer.compare",
)


def build_parser() -> argparse.ArgumentParser:
    """The CLI parser with every command module's subcommands."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

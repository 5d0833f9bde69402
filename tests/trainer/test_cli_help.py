"""Every trainer command documents itself: `--help` prints each option with its help text."""

from __future__ import annotations

import pytest

from trainer.__main__ import build_parser


@pytest.mark.parametrize(
    ("command", "option", "help_text"),
    [
        ("reward", "--data", "Training JSONL"),
        ("reward-eval", "--data", "JSONL: export records or TRL pairs"),
        ("sft", "--gradient-checkpointing", "30% more time"),
        ("ppo", "--out", "Directory"),
        ("rloo", "--reward-model", "Reward model dir"),
        ("dpo", "--out", "Directory"),
        ("generate", "--k", "Responses per prompt"),
    ],
)
def test_help_lists_options(
    command: str, option: str, help_text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert help_text, "an empty expected help text would match anything"
    assert "--model" in out and option in out
    # The help text must be the option's own, not any text elsewhere on the page.
    (sub,) = [a for a in build_parser()._subparsers._actions if a.choices]  # noqa: SLF001
    action = sub.choices[command]._option_string_actions[option]  # noqa: SLF001
    assert help_text in " ".join(action.help.replace("%%", "%").split())  # argparse escapes %

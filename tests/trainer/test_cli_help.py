"""Every trainer command documents itself: `--help` prints each option with its help text."""

from __future__ import annotations

import pytest

from trainer.__main__ import build_parser


@pytest.mark.parametrize(
    ("command", "option", "help_text"),
    [
        ("reward", "--data", "Training JSONL"),
        ("reward-eval", "--data", ""),
        ("sft", "--gradient-checkpointing", "30% more time"),
        ("ppo", "--out", "Directory"),
        ("rloo", "--reward-model", ""),
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
    assert "--model" in out and option in out and help_text in out

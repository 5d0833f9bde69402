"""The `prefloop` command, run as a user runs it: a subprocess with environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from app.models import Comparison, User
from app.security import verify_password
from tests.support import run


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_help_lists_the_commands(sqlite_url: str) -> None:
    out = run(["--help"], url=sqlite_url).stdout
    for command in ("serve", "db", "users", "demo", "import", "export", "tokens"):
        assert command in out
    sub = run(["db", "--help"], url=sqlite_url).stdout
    assert "upgrade" in sub and "downgrade" in sub
    assert "set-password" in run(["users", "--help"], url=sqlite_url).stdout


def test_users_create_and_set_password(sqlite_url: str) -> None:
    assert run(["db", "upgrade"], url=sqlite_url).returncode == 0
    created = run(
        ["users", "create", "Boss@Example.org", "--admin"],
        url=sqlite_url,
        stdin="a long password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "a long password" not in created.stdout + created.stderr
    changed = run(
        ["users", "set-password", "boss@example.org"], url=sqlite_url, stdin="another password\n"
    )
    assert changed.returncode == 0, changed.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        user = conn.execute(
            select(User.role, User.password_hash).where(User.email == "boss@example.org")
        ).one()
    assert user.role == "admin"
    assert verify_password(user.password_hash, "another password")
    assert not verify_password(user.password_hash, "a long password")


def test_duplicate_user_and_short_password_fail_with_one_line(sqlite_url: str) -> None:
    run(["db", "upgrade"], url=sqlite_url)
    stdin = "a long password\n"
    run(["users", "create", "a@example.org"], url=sqlite_url, stdin=stdin)
    again = run(["users", "create", "a@example.org"], url=sqlite_url, stdin=stdin)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: a user with email a@example.org already exists"
    short = run(["users", "create", "b@example.org"], url=sqlite_url, stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr


def test_demo_load_imports_the_demo_campaign_once(pg_url: str, committed_engine) -> None:
    first = run(["demo", "load"], url=pg_url)
    assert first.returncode == 0, first.stderr
    assert "demo admin:" in first.stdout and "demo rater:" in first.stdout
    second = run(["demo", "load"], url=pg_url)
    assert "0 comparisons imported" in second.stdout
    with committed_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Comparison)) >= 30
        assert conn.scalar(select(func.count()).select_from(User)) == 2


def test_demo_load_is_refused_in_production(sqlite_url: str) -> None:
    environ_secret = {"PREFLOOP_SECRET_KEY": "x" * 40}
    os.environ.update(environ_secret)
    try:
        out = run(["demo", "load"], url=sqlite_url, env="production")
    finally:
        os.environ.pop("PREFLOOP_SECRET_KEY")
    assert out.returncode == 2 and "not loaded in production" in out.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot reach the database"),
        ("notadb://x", "not a usable database URL"),
        ("sqlite:///{tmp}/empty.db", "run `prefloop db upgrade`"),
    ],
)
def test_bad_database_gives_one_clear_line(url: str, message: str, tmp_path: Path) -> None:
    out = run(
        ["users", "create", "c@example.org", "--password", "whatever-long"],
        url=url.format(tmp=tmp_path),
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_default_secret_in_production_is_refused(sqlite_url: str) -> None:
    out = run(["serve"], url=sqlite_url, env="production")
    assert out.returncode == 2
    assert "PREFLOOP_SECRET_KEY" in out.stderr and "Traceback" not in out.stderr


def test_downgrade_to_base_then_upgrade(sqlite_url: str) -> None:
    assert run(["db", "upgrade"], url=sqlite_url).returncode == 0
    assert run(["db", "downgrade", "base"], url=sqlite_url).returncode == 0
    current = run(["db", "current"], url=sqlite_url).stdout
    assert "database: None" in current


def test_import_is_all_or_nothing_and_names_the_line(sqlite_url: str, tmp_path: Path) -> None:
    run(["db", "upgrade"], url=sqlite_url)
    good = '{"prompt": "Dose of X?", "responses": [{"text": "a"}, {"text": "b"}]}'
    bad = '{"prompt": "Dose of Y?", "responses": [{"text": "only one"}]}'
    path = tmp_path / "next.jsonl"
    path.write_text(f"{good}\n{bad}\n")
    refused = run(["import", str(path), "--campaign", "round 2", "--create"], url=sqlite_url)
    assert refused.returncode == 2 and "line 2: responses" in refused.stderr
    missing = run(["import", str(path), "--campaign", "round 2"], url=sqlite_url)
    assert missing.returncode == 2
    path.write_text(f"{good}\n{good}\n")
    assert (
        "no campaign named 'round 2'"
        in run(["import", str(path), "--campaign", "round 2"], url=sqlite_url).stderr
    )
    done = run(["import", str(path), "--campaign", "round 2", "--create"], url=sqlite_url)
    assert done.returncode == 0 and "imported 2 comparisons" in done.stdout
    gone = run(["import", str(tmp_path / "absent.jsonl"), "--campaign", "x"], url=sqlite_url)
    assert gone.returncode == 2 and "No such file" in gone.stderr and "Traceback" not in gone.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Comparison)) == 2


def test_export_offers_every_export_query_option_under_its_flag() -> None:
    import typer

    from app.cli import cli
    from app.schemas.export import ExportQuery

    params = typer.main.get_command(cli).commands["export"].params  # type: ignore[attr-defined]
    assert {p.name for p in params} == {"out", *ExportQuery.model_fields}
    # The flags users type, as before the command was generated from the model.
    assert [opt for p in params for opt in p.opts] == [
        "--out", "-o", "--shape", "--format", "--style", "--ties", "--expansion",
        "--min-agreement", "--exclude-gold", "--include-superseded", "--include-skips",
        "--campaign", "--round", "--rater", "--since", "--until", "--max-judgment-id",
    ]  # fmt: skip
    switches = {p.opts[0] for p in params if p.is_flag}
    assert switches == {"--exclude-gold", "--include-superseded", "--include-skips"}

"""`prefloop`: serve, migrate, manage users and load the demo, with one clear line on failure."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import get_engine, get_sessionmaker, safe_url
from app.errors import AppError

cli = typer.Typer(
    help="prefloop: physicians rank responses; rounds close the RLHF loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
demo_cli = typer.Typer(help="Demo data.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(demo_cli, name="demo")


class SchemaOutOfDate(Exception):
    """The database is not at the migration head the code expects."""


def require_current_schema() -> None:
    """Raise SchemaOutOfDate unless the database is migrated to head."""
    from app.migrate import current_revision, head_revision

    current, head = current_revision(get_engine()), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database is at revision {current or 'none (empty)'} but this code expects "
            f"{head}: run `prefloop db upgrade`"
        )


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose transaction commits when the block succeeds."""
    require_current_schema()
    with get_sessionmaker()() as session, session.begin():
        yield session


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL only; SQLite wants 1)."),
) -> None:
    """Serve the web app and the API with uvicorn."""
    import uvicorn

    require_current_schema()
    typer.echo(
        f"prefloop serving on http://{host}:{port} (database {safe_url(get_settings().database_url)})"
    )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
    )


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database up (to head by default)."""
    from app.migrate import upgrade

    upgrade(revision=revision)
    typer.echo(f"database {safe_url(get_settings().database_url)} upgraded to {revision}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base."),
) -> None:
    """Migrate the database down to REVISION (`base` removes every table)."""
    from app.migrate import downgrade

    downgrade(revision=revision)
    typer.echo(f"database downgraded to {revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head."""
    from app.migrate import current_revision, head_revision

    typer.echo(f"database: {current_revision(get_engine())}  code head: {head_revision()}")


def _password_option() -> str | None:
    help_text = "Prefer the prompt: a password here lands in shell history."
    option: str | None = typer.Option(None, help=help_text)
    return option


def _read_password(given: str | None) -> str:
    """The password given, prompted for (twice) on a terminal, or read as one line from stdin."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\n")


@users_cli.command("create")
def users_create(
    email: str = typer.Argument(..., help="Login email."),
    admin: bool = typer.Option(False, "--admin", help="Give the admin role."),
    name: str = typer.Option("", help="Display name."),
    specialty: str | None = typer.Option(None, help="Clinical specialty."),
    password: str | None = _password_option(),
) -> None:
    """Create a rater (or, with --admin, an admin); the password is prompted for."""
    from app.services.users import create_user

    role = "admin" if admin else "rater"
    with session_scope() as session:
        user = create_user(session, email=email, password=_read_password(password),
                           display_name=name, role=role, specialty=specialty)
        typer.echo(f"created {user.role} {user.email} (pseudonym {user.pseudonym})")


@users_cli.command("set-password")
def users_set_password(
    email: str = typer.Argument(..., help="Login email."),
    password: str | None = _password_option(),
) -> None:
    """Set a user's password (and clear a lockout); the password is prompted for."""
    from app.services.users import set_password

    with session_scope() as session:
        user = set_password(session, email=email, password=_read_password(password))
        typer.echo(f"password set for {user.email}")


@demo_cli.command("load")
def demo_load() -> None:
    """Load the demo campaign and the demo admin and rater (not in production)."""
    from app.services.demo import load_demo

    if get_settings().env == "production":
        raise AppError("demo data is not loaded in production; set PREFLOOP_ENV=demo")
    with session_scope() as session:
        result = load_demo(session)
        typer.echo(
            f"demo campaign {result.campaign.name!r}: {result.imported} comparisons imported"
        )
        for role, email, password in result.logins:
            typer.echo(f"  demo {role}: {email} / {password}")


def _one_line(exc: Exception) -> str:
    """What went wrong and how to fix it, for the errors a user can cause."""
    url = safe_url(get_settings().database_url) if not isinstance(exc, ValidationError) else ""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"configuration error: {first['msg'].removeprefix('Value error, ')}"
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return (
            f"PREFLOOP_DATABASE_URL is not a usable database URL ({url}); expected e.g. "
            "postgresql+psycopg://user:pass@host:5432/db or sqlite:///./prefloop.db"
        )
    if isinstance(exc, OperationalError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no answer"
        return (
            f"cannot reach the database at {url}: {reason}. Is it running, and is "
            "PREFLOOP_DATABASE_URL right?"
        )
    if isinstance(exc, SchemaOutOfDate | AppError):
        return str(exc)
    raise exc


def main() -> None:
    """Entry point of the `prefloop` command."""
    try:
        cli()
    except (
        ValidationError,
        ArgumentError,
        NoSuchModuleError,
        OperationalError,
        SchemaOutOfDate,
        AppError,
    ) as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)

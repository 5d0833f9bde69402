"""`prefloop`: serve, migrate, users, import, export, tokens and the demo; one clear line on failure."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import typer
from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from app.cli_options import Renamed, with_model_options
from app.config import get_settings
from app.db import get_engine, get_sessionmaker, safe_url
from app.errors import AppError, ImportRejected
from app.models.rounds import RoundMethod
from app.schemas.export import ExportQuery
from app.services.rounds import RoundConfig

cli = typer.Typer(
    help="prefloop: physicians rank responses; rounds close the RLHF loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
users_cli = typer.Typer(help="User accounts.", no_args_is_help=True)
demo_cli = typer.Typer(help="Demo data.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API tokens for /api/v1.", no_args_is_help=True)
rounds_cli = typer.Typer(help="Training rounds (a worker runs them).", no_args_is_help=True)
quality_cli = typer.Typer(help="The kept data-quality figures.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(demo_cli, name="demo")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(rounds_cli, name="rounds")
cli.add_typer(quality_cli, name="quality")


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
    from app.serving import serve as serve_workers

    require_current_schema()
    typer.echo(
        f"prefloop serving on http://{host}:{port} (database {safe_url(get_settings().database_url)})"
    )
    status = serve_workers(host, port, workers, proxy_headers=True, log_level="info")
    if status:
        raise typer.Exit(status)


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
        user = create_user(
            session,
            email=email,
            password=_read_password(password),
            display_name=name,
            role=role,
            specialty=specialty,
        )
        typer.echo(f"created {user.role} {user.email} (pseudonym {user.pseudonym})")


@users_cli.command("set-password")
def users_set_password(
    email: str = typer.Argument(..., help="Login email."),
    password: str | None = _password_option(),
) -> None:
    """Set a user's password (ends their sessions, clears any login throttle); prompted for."""
    from app.services.users import set_password

    with session_scope() as session:
        user = set_password(session, email=email, password=_read_password(password))
        typer.echo(f"password set for {user.email}")


@users_cli.command("end-sessions")
def users_end_sessions(email: str = typer.Argument(..., help="Login email.")) -> None:
    """End every session of a user at once (their browsers must log in again)."""
    from app.services.users import end_sessions, get_existing_user

    with session_scope() as session:
        user = end_sessions(session, user_id=get_existing_user(session, email=email).id)
        typer.echo(f"sessions of {user.email} ended")


@users_cli.command("deactivate")
def users_deactivate(email: str = typer.Argument(..., help="Login email.")) -> None:
    """Deactivate an account: no login, no API token, and its sessions end at once."""
    from app.services.users import get_existing_user, set_active

    with session_scope() as session:
        user_id = get_existing_user(session, email=email).id
        user = set_active(session, user_id=user_id, active=False)
        typer.echo(f"{user.email} deactivated; sessions ended")


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


@cli.command("import")
def import_file(
    path: str = typer.Argument(
        ..., help="JSONL of import records (`python -m trainer generate` writes them)."
    ),
    campaign: str = typer.Option(..., help="Campaign name; created with --create."),
    create: bool = typer.Option(False, "--create", help="Create the campaign if it is missing."),
    overlap: int = typer.Option(3, help="Raters wanted per comparison, for a new campaign."),
) -> None:
    """Import prompts and their responses as comparisons: every line or none."""
    from app.services.campaigns import create_campaign, get_campaign_by_name
    from app.services.imports import import_records, parse_import_lines

    with open(path, encoding="utf-8") as lines:
        records = parse_import_lines(lines)
    with session_scope() as session:
        target = get_campaign_by_name(session, name=campaign)
        if target is None and not create:
            raise AppError(f"no campaign named {campaign!r}; add --create to create it")
        target = target or create_campaign(session, name=campaign, overlap=overlap)
        comparisons = import_records(session, campaign=target, records=records)
        typer.echo(f"imported {len(comparisons)} comparisons into {target.name!r}")


@cli.command("import-external")
def import_external(
    path: str = typer.Argument(..., help="The data set's file as published (.gz is read too)."),
    fmt: Literal["hh-rlhf", "finegrained"] = typer.Option(
        ..., "--format", help="The file's format."
    ),
    campaign: str = typer.Option(..., help="Campaign name; created with --create."),
    create: bool = typer.Option(False, "--create", help="Create the campaign if it is missing."),
    limit: int | None = typer.Option(None, help="Only the first N records of the file."),
    no_judgments: bool = typer.Option(
        False, "--no-judgments", help="Import the comparisons only, not the set's preferences."
    ),
    priority: int = typer.Option(
        0, help="The priority of a campaign --create makes: raters get higher ones first."
    ),
) -> None:
    """Import HH-RLHF pairs or FineGrainedRLHF QA: every line or none; known ids are skipped."""
    import gzip

    from app.services.campaigns import create_campaign, get_campaign_by_name
    from app.services.external_imports import IMPORTERS

    importer = IMPORTERS[fmt]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh, session_scope() as session:
        target = get_campaign_by_name(session, name=campaign)
        if target is None and not create:
            raise AppError(f"no campaign named {campaign!r}; add --create to create it")
        target = target or create_campaign(session, name=campaign, priority=priority)
        report = importer(session, campaign_id=target.id, lines=fh, limit=limit,
                          with_judgments=not no_judgments)  # fmt: skip
        typer.echo(f"{report.summary()} into {target.name!r}")
        for note in report.notes:
            typer.echo(f"note: {note}")


@tokens_cli.command("create")
def tokens_create(
    email: str = typer.Argument(..., help="The admin who owns the token."),
    name: str = typer.Option(..., help="What the token is for, e.g. 'nightly export'."),
    scope: Literal["read", "write"] = typer.Option("read", help="read, or write as well."),
    expires_days: int | None = typer.Option(None, help="Expire after this many days."),
) -> None:
    """Create an API token and print it once: only its hash is stored."""
    from app.services.tokens import create_token
    from app.services.users import get_user_by_email

    with session_scope() as session:
        user = get_user_by_email(session, email=email)
        if user is None:
            raise AppError(f"no user with email {email}")
        token, plaintext = create_token(
            session, user=user, name=name, scope=scope, expires_in_days=expires_days
        )
        typer.echo(f"token {token.id} ({scope}) for {user.email}; shown once, store it now:")
        typer.echo(plaintext)


@tokens_cli.command("list")
def tokens_list(all_: bool = typer.Option(False, "--all", help="Include revoked tokens.")) -> None:
    """List tokens (id, prefix, scope, owner, last use); never the tokens themselves."""
    from app.services.tokens import list_tokens

    with session_scope() as session:
        for t in list_tokens(session, include_revoked=all_):
            used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
            state = "revoked" if t.revoked_at else "active"
            typer.echo(
                f"{t.id}\t{t.prefix}...\t{t.scope}\t{state}\t{t.user.email}\t{t.name}"
                f"\tlast used {used}"
            )


@tokens_cli.command("revoke")
def tokens_revoke(token_id: int = typer.Argument(..., help="The id `tokens list` shows.")) -> None:
    """Revoke a token; requests with it get 401 from now on."""
    from app.services.tokens import revoke_token

    with session_scope() as session:
        token = revoke_token(session, token_id=token_id)
        typer.echo(f"token {token.id} ({token.prefix}...) revoked")


# The export's flags are ExportQuery's fields (the model the REST query string also parses);
# these few keep the CLI's own names: a campaign by name, times read as UTC when they have no zone.
_EXPORT_RENAMED = {
    "campaign_id": Renamed("--campaign", str | None, "Campaign name or id."),
    "round_id": Renamed("--round", int | None, "Training round id."),
    "created_after": Renamed("--since", datetime | None, "Judged at or after (UTC if no zone)."),
    "created_before": Renamed("--until", datetime | None, "Judged before (UTC if no zone)."),
}


@cli.command("export")
@with_model_options(ExportQuery, renamed=_EXPORT_RENAMED)
def export(
    out: str = typer.Option(..., "--out", "-o", help="File to write, or - for stdout."),
    **options: Any,
) -> None:
    """Export judgments (the same files as GET /api/v1/export), streamed to a file."""
    from app.services.export import campaign_id_by_name, export_bytes

    with session_scope() as session:
        campaign = options.pop("campaign_id")
        options["campaign_id"] = None if campaign is None else campaign_id_by_name(session, name=campaign)
        options["created_after"] = _utc(options["created_after"])
        options["created_before"] = _utc(options["created_before"])
        try:
            query = ExportQuery(**options)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise AppError(f"--{first['loc'][0]}: {first['msg']}") from exc
        written = 0
        with contextlib.ExitStack() as stack:
            sink = sys.stdout.buffer if out == "-" else stack.enter_context(open(out, "wb"))
            for chunk in export_bytes(session, query=query):
                sink.write(chunk)
                written += len(chunk)
        typer.echo(f"wrote {written:,} bytes of {query.shape} {query.format} to {out}", err=True)


@rounds_cli.command("queue")
def rounds_queue(
    campaign: str = typer.Option(..., help="Campaign name or id."),
    method: RoundMethod = typer.Option(RoundMethod.RLOO),
    set_: list[str] = typer.Option([], "--set", help="A RoundConfig field: --set policy_steps=50."),
    demo: bool = typer.Option(False, "--demo", help="The loop demo's CPU-sized settings."),
    head_to_head: bool = typer.Option(
        False, "--head-to-head", help=RoundConfig.model_fields["head_to_head"].description
    ),
) -> None:
    """Queue a training round for a worker to claim."""
    from app.services.demo import LOOP_DEMO_CONFIG
    from app.services.export import campaign_id_by_name
    from app.services.rounds import queue_round

    config: dict[str, object] = dict(LOOP_DEMO_CONFIG) if demo else {}
    if head_to_head:
        config["head_to_head"] = True
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise AppError(f"--set wants FIELD=VALUE, got {item!r}")
        config[key.strip()] = value.strip()
    with session_scope() as session:
        queued = queue_round(
            session, campaign_id=campaign_id_by_name(session, name=campaign), method=method,
            config=config, trigger="cli",
        )  # fmt: skip
        typer.echo(f"queued round {queued.id} ({method}); a worker will claim it")


@rounds_cli.command("list")
def rounds_list() -> None:
    """The newest rounds: id, status, step, campaign, error."""
    from app.services.rounds import list_rounds

    with session_scope() as session:
        for r in list_rounds(session, limit=50):
            typer.echo(
                f"{r.id}\t{r.status}\t{r.stage or '-'}\tcampaign {r.campaign_id}\t{r.error or ''}"
            )


@quality_cli.command("refresh")
def quality_refresh(
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Forget the kept figures and count every judgment again."
    ),
) -> None:
    """Count the judgments made since the last refresh into the quality figures (a cron job
    after large imports; the admin pages count the newest themselves)."""
    from app.services import quality

    read = 0
    if rebuild:
        with session_scope() as session:
            quality.rebuild(session)
    while True:  # a batch a transaction, so a long catch-up never holds one lock for long
        with session_scope() as session:
            progress = quality.refresh(session)
        read += progress.read
        if progress.caught_up:
            break
    typer.echo(f"counted {read} judgments; the quality figures are up to date")


@cli.command("worker")
def worker(
    until_idle: bool = typer.Option(
        False,
        "--until-idle",
        help="Exit when no round is left to claim (the default: run forever).",
    ),
    worker_id: str | None = typer.Option(
        None, help="Name shown on rounds (default host:pid:random)."
    ),
) -> None:
    """Claim and run training rounds (needs the `train` extra); one per GPU host."""
    import logging

    from app.db import worker_sessionmaker
    from app.worker.loop import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    require_current_schema()
    run_worker(worker_sessionmaker(), worker_id=worker_id, until_idle=until_idle)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


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
    if isinstance(exc, ImportRejected):  # every bad line, one a line
        return str(exc) + "".join(f"\n  line {n}: {why}" for n, why in exc.problems)
    if isinstance(exc, SchemaOutOfDate | AppError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
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
        OSError,
    ) as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)

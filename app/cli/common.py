"""What every command shares: the Typer app, consoles, settings, the database to use,
and errors turned into one line that says what to do."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import ConfigError, Settings, load_settings

cli = typer.Typer(
    help="Keep a Leap partner's meter inventory in PostgreSQL.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Errors are one line (main() below); a traceback only with METER_SYNC_TRACEBACK=1.
    pretty_exceptions_enable=False,
)
# Progress and errors on stderr; results (tables, CSV) on stdout, so they pipe cleanly.
console = Console(stderr=True)
out = Console(highlight=False)
EMBEDDED_DATABASE = "meter_sync"


class CliError(Exception):
    """An error already worded for people: printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


def package_version() -> str:
    try:
        return version("meter-sync")
    except PackageNotFoundError:
        return "unknown"


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)


@dataclass(frozen=True, slots=True)
class Database:
    settings: Settings  # with database_url set
    where: str  # for messages: which database this is


@contextlib.contextmanager
def database(config: Settings, *, share: bool = True) -> Iterator[Database]:
    """The database to use: DATABASE_URL, else the embedded PostgreSQL.

    With `share`, an embedded server that `serve` (or another command) already runs on the
    state directory is used as it is: two servers cannot run on one data directory. When
    none runs, this command starts one for itself, migrated, and stops it at the end.
    """
    if config.database_url is not None:
        yield Database(config, _describe_url(config.database_url))
        return
    from app.embedded_pg import EmbeddedPostgres, running_server_url
    from app.migrate import upgrade_to_head

    data_dir = config.state_dir / "pg"
    running = running_server_url(data_dir, EMBEDDED_DATABASE)
    if running is not None and share:
        console.print(f"Using the embedded PostgreSQL already running on {data_dir}")
        yield Database(config.model_copy(update={"database_url": running}), str(data_dir))
        return
    # Not shared (`serve`): start our own. A server left by a crashed owner is stopped
    # and replaced by EmbeddedPostgres; one whose owner still runs is refused.
    console.print(f"Starting the embedded PostgreSQL (data in {data_dir})")
    try:
        server = EmbeddedPostgres(data_dir)  # RuntimeError without the embedded extra
        server.start()
    except (RuntimeError, OSError) as exc:
        if running is not None:
            fail(
                f"the embedded PostgreSQL in {data_dir} is already in use (another `serve`?): "
                "stop it first, or give this one its own STATE_DIR",
                2,
            )
        fail(f"could not start the embedded PostgreSQL: {exc}")
    try:
        server.create_database(EMBEDDED_DATABASE)
        url = server.url(EMBEDDED_DATABASE)
        upgrade_to_head(url)
        yield Database(config.model_copy(update={"database_url": url}), str(data_dir))
    finally:
        server.stop()


def _describe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path} (DATABASE_URL)"


@asynccontextmanager
async def connected(
    db: Database, *, pool_size: int = 2, check_schema: bool = True
) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """An engine and sessions on `db`, after checking it answers and is migrated."""
    from app.db import create_engine, session_factory
    from app.migrate import current_revision, schema_problem

    assert db.settings.database_url is not None
    engine = create_engine(db.settings.database_url, pool_size=pool_size)
    try:
        if check_schema:
            problem = schema_problem(await current_revision(engine))
            if problem is not None:
                fail(f"{db.where}: {problem}")
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()


def run_async(db: Database, main: Callable[[Database], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run `main` and exit with its code; database errors become one line."""
    from app.problems import Problem

    try:
        code = asyncio.run(main(db))
    except CliError:
        raise
    except Problem as exc:  # e.g. 404 from a query function: its detail is for people
        fail(exc.detail or exc.title)
    except Exception as exc:
        from app.db import describe_database_error

        problem = describe_database_error(exc)
        if problem is None:
            raise
        fail(f"{db.where}: {problem}")
    raise typer.Exit(code)


def report_error(exc: BaseException) -> int:
    """Print an error raised by a command as one line; returns the exit code."""
    if isinstance(exc, CliError):
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return exc.code
    from app.db import describe_database_error

    problem = describe_database_error(exc)
    text = problem or f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    console.print(
        f"[red]error:[/red] {text} (METER_SYNC_TRACEBACK=1 shows where)",
        highlight=False,
        soft_wrap=True,
    )
    return 1


def traceback_wanted() -> bool:
    return os.environ.get("METER_SYNC_TRACEBACK", "") not in ("", "0")


def exit_with_error(exc: BaseException) -> NoReturn:
    if traceback_wanted():
        raise exc
    sys.exit(report_error(exc))

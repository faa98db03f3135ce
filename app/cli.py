"""The `meter-sync` command."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from app import logs
from app.bootstrap import ensure_credentials
from app.config import ConfigError, Settings, load_settings

cli = typer.Typer(help="Keep a Leap partner's meter inventory in PostgreSQL.", no_args_is_help=True)
console = Console(stderr=True)
EMBEDDED_DATABASE = "meter_sync"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    """Yield settings with a database URL: the configured one, or an embedded server's."""
    if settings.database_url is not None:
        yield settings
        return
    from app.embedded_pg import EmbeddedPostgres
    from app.migrate import upgrade_to_head

    server = EmbeddedPostgres(settings.state_dir / "pg")
    console.print(f"Starting the embedded PostgreSQL (data in {settings.state_dir / 'pg'})")
    server.start()
    try:
        server.create_database(EMBEDDED_DATABASE)
        url = server.url(EMBEDDED_DATABASE)
        upgrade_to_head(url)
        yield settings.model_copy(update={"database_url": url})
    finally:
        server.stop()


def _tune_gc() -> None:
    """Fewer, cheaper collections: start-up objects are frozen out of every collection and
    young-generation passes run less often (measured in docs/benchmarks.md: lower p99)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API only: do not run the worker here")
    ] = False,
    ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate (PEM)")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
) -> None:
    """Serve the API and the webhook receiver (with the worker unless --no-worker)."""
    import uvicorn

    from app.main import create_app

    settings, notes = ensure_credentials(_settings())
    logs.configure(settings.log_level)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    with _database(settings) as ready:
        app = create_app(ready)
        app.state.run_worker = not no_worker
        console.print(f"meter-sync on http{'s' if ssl_certfile else ''}://{host}:{port}")
        _tune_gc()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            timeout_graceful_shutdown=20,
        )


@cli.command()
def migrate() -> None:
    """Apply database migrations up to head (needs DATABASE_URL)."""
    from app.migrate import upgrade_to_head

    settings = _settings()
    if settings.database_url is None:
        console.print("DATABASE_URL is unset: `serve` migrates the embedded database itself.")
        raise typer.Exit(2)
    upgrade_to_head(settings.database_url)
    console.print("Database migrated to head.")


@cli.command()
def config() -> None:
    """Print the effective configuration, secrets masked."""
    for name, value in _settings().masked().items():
        typer.echo(f"{name}={value}")


def main() -> None:
    # Rich should not wrap or colour output that goes to a file or a pipe.
    os.environ.setdefault("COLUMNS", "120")
    cli()


if __name__ == "__main__":
    main()

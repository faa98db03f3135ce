"""The `meter-sync` command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from app import logs
from app.bootstrap import ensure_credentials
from app.config import ConfigError, Settings, load_settings
from app.dispatch.cli import leap_cli

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


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API only: do not run the worker here")
    ] = False,
    ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate (PEM)")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM)")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes")] = 1,
) -> None:
    """Serve the API and the webhook receiver (with the worker unless --no-worker)."""
    import uvicorn

    from app import frontdoor
    from app.main import create_app, tune_gc
    from app.metrics import reset_multiprocess_dir

    settings, notes = ensure_credentials(_settings())
    logs.configure(settings.log_level, settings.log_format)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.state_dir.resolve() / "metrics")
    reset_multiprocess_dir()
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that
    # would end the process before the embedded PostgreSQL is stopped below.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with _database(settings) as ready:
        for line in logs.banner(ready, "https" if ssl_certfile else "http", host, port):
            console.print(line, highlight=False, soft_wrap=True)
        common: dict[str, object] = {
            "host": host,
            "port": port,
            "log_config": None,
            "access_log": False,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
            "timeout_graceful_shutdown": 20,
            **frontdoor.uvicorn_options(),
        }
        if workers == 1:
            frontdoor.configure()
            app = create_app(ready, run_worker=not no_worker)
            tune_gc()
            uvicorn.run(app, **common)  # type: ignore[arg-type]
            return
        # Each process builds its app from the environment: hand it the resolved values.
        os.environ.update(_environment_for_children(ready, run_worker=not no_worker))
        uvicorn.run(
            "app.main:app_from_environment",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _environment_for_children(settings: Settings, *, run_worker: bool) -> dict[str, str]:
    assert settings.database_url is not None
    secrets = ",".join(s.get_secret_value() for s in settings.leap_webhook_secrets)
    keys = ",".join(f"{k.scope}:{k.key.get_secret_value()}" for k in settings.api_keys)
    return {
        "DATABASE_URL": settings.database_url,
        "LEAP_WEBHOOK_SECRETS": secrets,
        "API_KEYS": keys,
        "METER_SYNC_RUN_WORKER": "1" if run_worker else "0",
    }


@cli.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics and /healthz on this port (default: off)")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run the worker alone: enrichment, event retries and scheduled reconciliation.

    SIGTERM or SIGINT stops it: work in hand gets a few seconds to finish, then jobs go
    back to the queue and a reconciliation run resumes later from its stored progress.
    """
    from app import metrics
    from app.db import create_engine, session_factory
    from app.worker import Worker

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)

    async def main(ready: Settings) -> None:
        assert ready.database_url is not None
        engine = create_engine(ready.database_url, pool_size=10)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = None
        if metrics_port is not None:
            app = metrics.worker_app(engine, ready.api_mode)
            server = metrics.embedded_server(app, metrics_host, metrics_port)
            serving = asyncio.create_task(server.serve())
        try:
            await Worker(ready, engine, session_factory(engine)).run(stop)
        finally:
            if server is not None:
                server.should_exit = True
                await serving
            await engine.dispose()

    with _database(settings) as ready:
        asyncio.run(main(ready))


@cli.command()
def sync(
    full: Annotated[bool, typer.Option("--full", help="Walk everything, archive the rest")] = False,
) -> None:
    """Run one reconciliation with Leap's API now, showing progress."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app import locks
    from app.db import create_engine, session_factory
    from app.leap.client import LeapClient
    from app.leap.errors import LeapAuthError
    from app.models import RunMode, RunStatus, SyncRun
    from app.sync import runs

    settings = _settings()
    if settings.leap_api_key is None:
        console.print("webhook-only mode: set LEAP_API_KEY to reconcile with Leap's API")
        raise typer.Exit(2)
    api_key = settings.leap_api_key.get_secret_value()

    async def main(ready: Settings) -> int:
        assert ready.database_url is not None
        engine = create_engine(ready.database_url, pool_size=2)
        sessions = session_factory(engine)
        try:
            async with sessions() as session:
                run = await runs.request_run(
                    session, RunMode.FULL if full else RunMode.DELTA, "cli"
                )
                await session.commit()
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as bar:
                task = bar.add_task(f"{run.mode} run {run.id}", total=None)

                def show(r: SyncRun) -> None:
                    bar.update(
                        task,
                        description=f"{r.mode} run {r.id}: {r.phase}, "
                        f"{r.pages} pages, {r.meters} meters",
                    )

                async with engine.connect() as lock:
                    if await locks.try_session_lock(lock, locks.LEADER):
                        async with LeapClient(ready.leap_api_base_url, api_key) as client:
                            try:
                                done = await runs.execute(
                                    sessions, client, run.id, show, zones=ready.market_timezones
                                )
                            except LeapAuthError as exc:
                                console.print(f"[red]stopped: {exc}[/red]")
                                return 1
                    else:
                        # A worker leads reconciliation: it takes the queued run; follow it.
                        done = await runs.wait_for(sessions, run.id, show)
            console.print(
                f"run {done.id} {done.status}: {done.pages} pages, {done.meters} meters"
                + (f" ({done.error})" if done.error else "")
            )
            return 0 if done.status == RunStatus.SUCCEEDED else 1
        finally:
            await engine.dispose()

    with _database(settings) as ready:
        raise typer.Exit(asyncio.run(main(ready)))


@cli.command()
def replay(
    event_id: Annotated[
        str | None, typer.Argument(help="A webhook_event_id to apply again")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Apply every failed event again")
    ] = False,
) -> None:
    """Apply stored webhook events again (one by id, or all failed ones)."""
    import uuid

    from app.db import create_engine, session_factory
    from app.dispatch.service import REAPPLIERS as DISPATCH_REAPPLIERS
    from app.models import WebhookStatus
    from app.webhooks import repository
    from app.webhooks.retry import replay as replay_event
    from app.webhooks.service import ApplyOptions

    if (event_id is None) == (not failed):
        console.print("give either an EVENT_ID or --failed")
        raise typer.Exit(2)
    settings = _settings()

    async def main(ready: Settings) -> int:
        assert ready.database_url is not None
        engine = create_engine(ready.database_url, pool_size=2)
        sessions = session_factory(engine)
        try:
            async with sessions() as session:
                if event_id is not None:
                    ids = [uuid.UUID(event_id)]
                else:
                    ids = await repository.ids_with_status(session, WebhookStatus.FAILED)
            bad = 0
            for one in ids:
                async with sessions() as session:
                    event = await replay_event(
                        session, one, ApplyOptions.of(ready, DISPATCH_REAPPLIERS)
                    )
                    await session.commit()
                status = event.status if event else "not found"
                bad += status != WebhookStatus.APPLIED
                console.print(f"{one}: {status}", highlight=False)
            return 1 if bad else 0
        finally:
            await engine.dispose()

    with _database(settings) as ready:
        raise typer.Exit(asyncio.run(main(ready)))


@cli.command("leap-sim")
def leap_sim(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8900,
    meters: Annotated[int, typer.Option(help="Meters in the generated portfolio")] = 10_000,
    groups: Annotated[int, typer.Option(help="Market groups")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the portfolio")] = 1,
    time_factor: Annotated[
        float, typer.Option(help="Scale of Leap's retry schedule (0.001: 1 min -> 60 ms)")
    ] = 1.0,
    receiver_url: Annotated[
        str | None, typer.Option(help="Subscribe this receiver to every event type")
    ] = None,
    receiver_secret: Annotated[
        str | None, typer.Option(help="Secret sent in X-Webhook-Secret to the receiver")
    ] = None,
) -> None:
    """Run the fake Leap (API key from LEAP_SIM_API_KEY, default `sim-key`)."""
    from app.leap_sim.server import run

    headers = {"X-Webhook-Secret": receiver_secret} if receiver_secret else None
    run(
        host=host,
        port=port,
        meters=meters,
        groups=groups,
        seed=seed,
        time_factor=time_factor,
        receiver_url=receiver_url,
        receiver_headers=headers,
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
    """Print the effective configuration and where each value came from; no secret shown."""
    from app import config_view
    from app.bootstrap import stored_credentials

    settings, generated = stored_credentials(_settings())
    for line in config_view.lines(settings, generated):
        typer.echo(line)


cli.add_typer(leap_cli, name="leap")


def main() -> None:
    # Rich should not wrap or colour output that goes to a file or a pipe.
    os.environ.setdefault("COLUMNS", "120")
    cli()


if __name__ == "__main__":
    main()

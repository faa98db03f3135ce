"""Long-running commands and set-up: serve, worker, migrate, leap-sim, config."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer

from app import logs
from app.bootstrap import ensure_credentials
from app.cli.common import cli, console, database, fail, settings
from app.config import Settings


@cli.command(rich_help_panel="Run")
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

    configured, notes = ensure_credentials(settings())
    logs.configure(configured.log_level, configured.log_format)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(configured.state_dir.resolve() / "metrics")
    reset_multiprocess_dir()
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that
    # would end the process before the embedded PostgreSQL is stopped below.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # share=False: the server owns its embedded PostgreSQL (it stops it on exit).
    with database(configured, share=False) as db:
        ready = db.settings
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


@cli.command(rich_help_panel="Run")
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

    configured = settings()
    logs.configure(configured.log_level, configured.log_format)

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

    # A worker beside `serve` shares its embedded PostgreSQL; database outages are
    # logged once per change by the loops themselves (app/outage.py).
    with database(configured) as db:
        asyncio.run(main(db.settings))


@cli.command("leap-sim", rich_help_panel="Run")
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
    dispatch_every: Annotated[
        float | None,
        typer.Option(help="Dispatch a group every N seconds (to RECEIVER_URL/dispatch), for demos"),
    ] = None,
    dispatch_drift: Annotated[
        int, typer.Option(help="Meters added to and left out of each demo dispatch")
    ] = 0,
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
        dispatch_every=dispatch_every,
        dispatch_drift=dispatch_drift,
    )


@cli.command(rich_help_panel="Run")
def migrate() -> None:
    """Apply database migrations up to head (DATABASE_URL, or the embedded PostgreSQL)."""
    from app.migrate import upgrade_to_head

    with database(settings()) as db:
        assert db.settings.database_url is not None
        try:
            upgrade_to_head(db.settings.database_url)
        except Exception as exc:
            from app.db import describe_database_error

            problem = describe_database_error(exc)
            if problem is None:
                raise
            fail(f"{db.where}: {problem}")
        console.print(f"Database migrated to head ({db.where}).")


@cli.command(rich_help_panel="Run")
def config() -> None:
    """Print the effective configuration and where each value came from; no secret shown."""
    from app import config_view
    from app.bootstrap import stored_credentials

    resolved, generated = stored_credentials(settings())
    for line in config_view.lines(resolved, generated):
        typer.echo(line)

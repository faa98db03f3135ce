"""Commands that change things on request: sync (one reconciliation now), replay."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer

from app.cli.common import Database, cli, connected, console, database, fail, out, run_async
from app.cli.common import settings as load
from app.models import SyncRun, WebhookStatus


@cli.command(rich_help_panel="Operate")
def sync(
    full: Annotated[bool, typer.Option("--full", help="Walk everything, archive the rest")] = False,
) -> None:
    """Run one reconciliation with Leap's API now, showing progress and what changed.

    Beside a running `serve` (whose worker leads reconciliation), the run is queued for
    that worker and followed here.
    """
    configured = load()
    if configured.leap_api_key is None:
        fail("webhook-only mode: set LEAP_API_KEY to reconcile with Leap's API", 2)
    with database(configured) as db:
        run_async(db, lambda ready: _sync(ready, full=full))


async def _sync(db: Database, *, full: bool) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from app import locks
    from app.leap.client import LeapClient
    from app.leap.errors import LeapAuthError
    from app.models import RunMode, RunStatus
    from app.sync import runs

    ready = db.settings
    assert ready.leap_api_key is not None
    began = time.monotonic()
    async with connected(db) as (engine, sessions):
        async with sessions() as session:
            run = await runs.request_run(session, RunMode.FULL if full else RunMode.DELTA, "cli")
            await session.commit()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(f"{run.mode} run {run.id}: queued", total=None)

            def show(r: SyncRun) -> None:
                bar.update(task, description=_progress_line(r))

            async with engine.connect() as lock:
                leading = await locks.try_session_lock(lock, locks.LEADER)
                if leading:
                    key = ready.leap_api_key.get_secret_value()
                    async with LeapClient(ready.leap_api_base_url, key) as client:
                        try:
                            done = await runs.execute(
                                sessions, client, run.id, show, zones=ready.market_timezones
                            )
                        except LeapAuthError as exc:
                            fail(f"Leap refused LEAP_API_KEY: {exc}")
                else:
                    # A worker (e.g. `serve`'s) leads reconciliation: it takes the queued
                    # run; follow it here.
                    bar.update(task, description=f"{run.mode} run {run.id}: queued for the worker")
                    done = await runs.wait_for(sessions, run.id, show)
    where = "here" if leading else "by the worker that leads reconciliation"
    out.print(
        f"run {done.id} ({done.mode}, {where}) {done.status} in "
        f"{time.monotonic() - began:.1f} s: {done.pages} pages of {runs.PAGE_SIZE}, "
        f"{done.meters} meters"
    )
    out.print(
        f"changed: {done.meters_new} new, {done.meters_updated} updated, "
        f"{done.meters_archived} archived"
    )
    if done.error:
        out.print(f"error: {done.error}")
    return 0 if done.status == RunStatus.SUCCEEDED else 1


def _progress_line(run: SyncRun) -> str:
    from app.sync.runs import PAGE_SIZE

    return (
        f"{run.mode} run {run.id}: {run.phase}, {run.pages} pages of {PAGE_SIZE}, "
        f"{run.meters} meters ({run.meters_new} new, {run.meters_updated} updated)"
    )


@cli.command(rich_help_panel="Operate")
def replay(
    event_id: Annotated[
        str | None, typer.Argument(help="A webhook_event_id to apply again")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Apply every failed event again (= --status failed)")
    ] = False,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Apply every event with these statuses again, e.g. `dead` or `failed,dead`",
        ),
    ] = None,
) -> None:
    """Apply stored webhook events again: one by id, or every event with a status."""
    from app.webhooks.queries import parse_statuses

    chosen = [WebhookStatus.FAILED] if failed else []
    if status is not None:
        try:
            chosen += parse_statuses(status)
        except ValueError as exc:
            fail(str(exc), 2)
    if (event_id is None) == (not chosen):
        fail("give either an EVENT_ID or --failed / --status STATUSES", 2)
    one: uuid.UUID | None = None
    if event_id is not None:
        try:
            one = uuid.UUID(event_id)
        except ValueError:
            fail(f"{event_id!r} is not a webhook_event_id (a UUID: see `meter-sync events`)", 2)
    with database(load()) as db:
        run_async(db, lambda ready: _replay(ready, one, list(dict.fromkeys(chosen))))


async def _replay(db: Database, one: uuid.UUID | None, statuses: list[WebhookStatus]) -> int:
    from app.dispatch.service import REAPPLIERS as DISPATCH_REAPPLIERS
    from app.webhooks import repository
    from app.webhooks.retry import replay as replay_event
    from app.webhooks.service import ApplyOptions

    async with connected(db) as (_, sessions):
        if one is not None:
            ids = [one]
        else:
            async with sessions() as session:
                ids = await repository.ids_with_status(session, statuses)
            if not ids:
                out.print(f"no {' or '.join(statuses)} events to replay")
                return 0
        outcomes: dict[str, int] = {}
        for event_id in ids:
            async with sessions() as session:
                event = await replay_event(
                    session, event_id, ApplyOptions.of(db.settings, DISPATCH_REAPPLIERS)
                )
                await session.commit()
            if event is None:
                fail(f"no webhook event {event_id}", 1)
            outcomes[event.status] = outcomes.get(event.status, 0) + 1
            error = f"  {event.error}" if event.error else ""
            out.print(f"{event_id}  {event.event_type}  {event.status}{error}", markup=False)
    if len(ids) > 1:
        out.print("replayed " + ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())))
    return 0 if set(outcomes) <= {WebhookStatus.APPLIED, WebhookStatus.IGNORED} else 1

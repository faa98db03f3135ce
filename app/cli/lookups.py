"""Look-ups for people: the REST read side as text, through the same query functions."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from datetime import date
from typing import Annotated, Any

import typer

from app.cli import render
from app.cli.common import Database, cli, connected, database, fail, out, run_async
from app.cli.common import settings as load

ROSTER_PAGE = 1000


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{value!r} is not a {what} (a UUID)", 2)


@cli.command(rich_help_panel="Look up")
def meter(meter_id: Annotated[str, typer.Argument(help="Leap's meter_id")]) -> None:
    """One meter: reference, region, enrollment, today's group (as GET /v1/meters/ID)."""
    wanted = _uuid(meter_id, "meter_id")

    async def show(db: Database) -> int:
        from app.deps import reads_in
        from app.meters.queries import get_meter

        async with connected(db) as (_, sessions), sessions() as session:
            found = await get_meter(await reads_in(session), db.settings, wanted)
        render.record(f"meter {wanted}", found.model_dump(mode="json"))
        return 0

    with database(load()) as db:
        run_async(db, show)


@cli.command(rich_help_panel="Look up")
def partner(reference: Annotated[str, typer.Argument(help="A partner_reference")]) -> None:
    """One partner: Connect and authorization, meters, history (GET /v1/partner-references/REF)."""

    async def show(db: Database) -> int:
        from app.deps import reads_in
        from app.partners.queries import get_partner

        async with connected(db) as (_, sessions), sessions() as session:
            found = await get_partner(await reads_in(session), db.settings, reference)
        render.record(f"partner {reference}", found.model_dump(mode="json"))
        return 0

    with database(load()) as db:
        run_async(db, show)


@cli.command(rich_help_panel="Look up")
def roster(
    group: Annotated[str, typer.Argument(help="A market_group_id, or the group's name")],
    on: Annotated[
        str | None,
        typer.Option("--date", help="Trade date YYYY-MM-DD (default: today in the group's zone)"),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout, for a spreadsheet")] = False,
) -> None:
    """Who is in a market group on a trade date (GET /v1/groups/ID/meters), every page."""
    day: date | None = None
    if on is not None:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            fail(f"--date {on!r} is not a date (YYYY-MM-DD)", 2)

    async def show(db: Database) -> int:
        from app.groups.queries import group_named
        from app.groups.queries import roster as roster_page

        async with connected(db) as (_, sessions), sessions() as session:
            try:
                group_id, name = uuid.UUID(group), None
            except ValueError:
                group_id, name = await group_named(session, group)
            items: list[dict[str, Any]] = []
            cursor: uuid.UUID | None = None
            while True:
                page = json.loads(await roster_page(session, group_id, day, cursor, ROSTER_PAGE))
                items += page["items"]
                if page["next_cursor"] is None:
                    break
                cursor = uuid.UUID(page["next_cursor"])
        if as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(["meter_id", "partner_reference"])
            writer.writerows([i["meter_id"], i["partner_reference"] or ""] for i in items)
            return 0
        name = name or page.get("market_group_name")
        label = f"{name} ({group_id})" if name else str(group_id)
        out.print(f"group {label} on {page['trade_date']}: {len(items)} meters", markup=False)
        render.rows_table(None, items, ["meter_id", "partner_reference"])
        return 0

    with database(load()) as db:
        run_async(db, show)


@cli.command(rich_help_panel="Look up")
def events(
    status: Annotated[
        str | None,
        typer.Option(help="Statuses, comma-separated: received,applied,failed,ignored,dead"),
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only this webhook_event_type")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many")] = 100,
) -> None:
    """Stored webhook events, oldest first, with their errors (GET /v1/webhook-events)."""
    from app.webhooks.queries import parse_statuses

    try:
        statuses = parse_statuses(status) if status is not None else None
    except ValueError as exc:
        fail(str(exc), 2)

    async def show(db: Database) -> int:
        from app.webhooks.queries import event_page

        rows: list[dict[str, Any]] = []
        more = False
        async with connected(db) as (_, sessions), sessions() as session:
            cursor: int | None = None
            while len(rows) < limit:
                page = await event_page(
                    session,
                    statuses=statuses,
                    event_type=event_type,
                    cursor=cursor,
                    limit=min(1000, limit - len(rows)),
                )
                rows += [e.model_dump(mode="json") for e in page.items]
                if page.next_cursor is None:
                    break
                cursor = int(page.next_cursor)
            more = page.next_cursor is not None
        what = f"{status} events" if status else "events"
        out.print(f"{len(rows)} {what}" + (" (more: raise --limit)" if more else ""))
        for row in rows:
            # One line per event, its error indented below: errors are long, ids are copied.
            tries = f"{row['attempts']} attempt{'s' if row['attempts'] != 1 else ''}"
            out.print(
                f"{render.text(row['received_at'])}  {row['webhook_event_id']}  "
                f"{row['event_type']}  {row['status']} ({tries})",
                markup=False,
            )
            if row["error"]:
                out.print(f"    {row['error']}", markup=False)
        if any(r["status"] in ("failed", "dead") for r in rows):
            out.print(
                "Fix the cause, then `meter-sync replay --status failed,dead` "
                "(docs/operations.md: what each status means)"
            )
        return 0

    with database(load()) as db:
        run_async(db, show)


@cli.command(rich_help_panel="Look up")
def status() -> None:
    """Is sync healthy: the verdict and its reasons, last runs, lag, events waiting."""

    async def show(db: Database) -> int:
        from app.sync.queries import duration
        from app.sync.queries import status as sync_status

        async with connected(db) as (_, sessions), sessions() as session:
            found = await sync_status(session, db.settings)
        out.print(
            "[green]healthy[/green]"
            if found.healthy
            else f"[red]unhealthy[/red]: {len(found.problems)} problem(s)"
        )
        for problem in found.problems:
            out.print(f"  - {problem.code}: {problem.detail}", markup=False)
        last_event = (
            f"{found.last_event_received_at:%Y-%m-%d %H:%M:%S}Z "
            f"({duration(found.seconds_since_last_event or 0)} ago)"
            if found.last_event_received_at
            else None
        )
        render.record(
            "",
            {
                "mode": f"{found.mode}: {found.detail}",
                "last webhook event": last_event,
                "lag": duration(found.lag_seconds) if found.lag_seconds is not None else None,
                "last run": _run_line(found.last_run),
                "last full run": _run_line(found.last_full_run),
                "queued jobs": found.queued_jobs,
                "failed events": found.failed_events,
                "dead events": found.dead_events,
            },
        )
        return 0 if found.healthy else 1

    with database(load()) as db:
        run_async(db, show)


def _run_line(run: Any) -> str | None:
    if run is None:
        return None
    when = f"{run.finished_at:%Y-%m-%d %H:%M:%S}Z" if run.finished_at else "not finished"
    line = (
        f"#{run.id} {run.mode} {run.status} ({when}): {run.pages} pages, {run.meters} meters; "
        f"{run.meters_new} new, {run.meters_updated} updated, {run.meters_archived} archived"
    )
    return f"{line}; {run.error}" if run.error else line

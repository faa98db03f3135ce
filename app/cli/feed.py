"""`meter-sync changes [--follow]`: the change feed, for people.

Reads the feed from the database, like the other look-ups: DATABASE_URL, else the
embedded PostgreSQL that `serve` runs (or one of its own), via app/cli/common.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console

from app.changes import queries
from app.changes.schemas import ChangeOut
from app.changes.signal import ChangeSignal
from app.cli.common import database, settings
from app.problems import Problem

ONCE_WAIT_S = 1.0
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True)


def line(change: ChangeOut) -> str:
    """One change on one line: cursor, time, type, then what it concerns."""
    subject = " ".join(
        f"{name}={value}"
        for name, value in (
            ("meter", change.meter_id),
            ("ref", change.partner_reference),
            ("group", change.market_group_id),
            ("dispatch", change.dispatch_event_id),
        )
        if value is not None
    )
    summary = json.dumps(change.summary, separators=(",", ":")) if change.summary else ""
    return f"{change.cursor}  {change.at.isoformat()}  {change.type:<18} {subject} {summary}"


def changes_command(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new changes as they commit")
    ] = False,
    after: Annotated[
        str | None, typer.Option(help="Start after this cursor (default: the oldest kept)")
    ] = None,
    types: Annotated[str | None, typer.Option(help="Only these types (comma-separated)")] = None,
    limit: Annotated[int, typer.Option(help="Stop after this many (0: no limit)")] = 0,
) -> None:
    """Print the change feed (cursor, time, type, subject), oldest first."""
    with database(settings()) as db:
        assert db.settings.database_url is not None
        try:
            code = asyncio.run(_print(db.settings.database_url, follow, after, types, limit))
        except KeyboardInterrupt:
            code = 0
        raise typer.Exit(code)


async def _print(
    database_url: str, follow: bool, after: str | None, types: str | None, limit: int
) -> int:
    from app.db import create_engine, session_factory

    engine = create_engine(database_url, pool_size=2)
    signal = ChangeSignal(database_url)
    printed = 0
    try:
        wanted = queries.parse_types(types)
        cursor = after
        while True:
            page = await queries.read_page(
                session_factory(engine),
                signal,
                after=cursor,
                limit=queries.MAX_LIMIT,
                types=wanted,
                # Once: a short wait, for changes a running transaction holds back.
                wait_s=queries.MAX_WAIT_S if follow else ONCE_WAIT_S,
            )
            for change in page.items:
                out.print(line(change))
                printed += 1
                if limit and printed >= limit:
                    return 0
            cursor = page.next_cursor
            if not page.items and not follow:
                return 0
    except Problem as exc:
        err.print(f"[red]{exc.status}: {exc.detail} {exc.extra or ''}[/red]")
        return 1
    finally:
        await signal.close()
        await engine.dispose()

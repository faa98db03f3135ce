"""The `meter-sync` command (Typer), one module per group of commands:

- server.py: serve, worker, migrate, leap-sim, config
- operate.py: sync, replay
- lookups.py: meter, partner, roster, events, status (the REST read side, as text)
- app/dispatch/cli.py: `leap subscribe | status | test` (Leap's webhook registrations)
- feed.py: changes [--follow] (the change feed, for people)

common.py holds what they share (the database to use, one-line errors); render.py
prints records and tables. No SQL here: commands call the domains' query and service
functions, the same ones the REST endpoints call.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli import lookups, operate, server
from app.cli.common import cli, exit_with_error, out, package_version
from app.cli.feed import changes_command
from app.dispatch.cli import leap_cli

cli.add_typer(leap_cli, name="leap", rich_help_panel="Operate")
cli.command("changes", rich_help_panel="Look up")(changes_command)

__all__ = ["cli", "lookups", "main", "operate", "server"]


def _show_version(value: bool) -> None:
    if value:
        out.print(f"meter-sync {package_version()}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Keep a Leap partner's meter inventory in PostgreSQL."""


def main() -> None:
    # Rich should not wrap or colour output that goes to a file or a pipe.
    os.environ.setdefault("COLUMNS", "120")
    try:
        cli()
    except Exception as exc:  # the last guard: one line, not a traceback
        exit_with_error(exc)

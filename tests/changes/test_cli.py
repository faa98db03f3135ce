"""`meter-sync changes`: the feed printed for people, once or following."""

from __future__ import annotations

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from app.cli.feed import changes_command


def _insert(database_url: str, *references: str) -> None:
    with psycopg.connect(database_url.replace("+asyncpg", ""), autocommit=True) as conn:
        for reference in references:
            conn.execute(
                "INSERT INTO changes (type, partner_reference) VALUES ('meter.linked', %s)",
                (reference,),
            )


@pytest.fixture
def command() -> typer.Typer:
    app = typer.Typer()
    app.command()(changes_command)
    return app


def test_prints_the_feed_then_follows(command: typer.Typer, database_url: str) -> None:
    _insert(database_url, "site-1", "site-2", "site-3")
    env = {"DATABASE_URL": database_url}
    printed = CliRunner().invoke(command, [], env=env)
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert [line.split()[2] for line in lines] == ["meter.linked"] * 3
    assert [line.split()[3] for line in lines] == ["ref=site-1", "ref=site-2", "ref=site-3"]
    after_first = lines[0].split()[0]
    followed = CliRunner().invoke(
        command, ["--follow", "--after", after_first, "--limit", "2"], env=env
    )
    assert followed.exit_code == 0, followed.output
    assert [line.split()[3] for line in followed.output.splitlines()] == [
        "ref=site-2",
        "ref=site-3",
    ]
    bad = CliRunner().invoke(command, ["--after", "nonsense"], env=env)
    assert bad.exit_code == 1
    assert "422" in bad.output

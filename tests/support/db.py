"""The test PostgreSQL server, reading rows back, and the migration head the code ships."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.migrate import alembic_config
from tests.support.settings import ROOT

TABLES = (
    "change_feed_state, changes, group_memberships, jobs, market_groups, meters, "
    "partner_events, partners, sync_runs, webhook_events, dispatch_drifts, dispatches, "
    "dispatch_set_meters, dispatch_meter_sets"
)


def server_url() -> tuple[str, Any]:
    """A server URL without database name, and an embedded server to stop (or None).

    TEST_DATABASE_URL if set, else the server on 127.0.0.1:5432 if it answers, else an
    embedded one started here.
    """
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured.rsplit("/", 1)[0], None
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return "postgresql+asyncpg://postgres@127.0.0.1:5432", None
    except OSError:
        pass
    from app.embedded_pg import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="meter-sync-test-pg-")), ephemeral=True)
    server.start()
    return server.url("postgres").rsplit("/", 1)[0], server


async def admin(server: str, sql: str) -> None:
    """Run `sql` on the server's `postgres` database (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def truncate_all(database_url: str) -> None:
    with psycopg.connect(
        database_url.replace("postgresql+asyncpg", "postgresql"), autocommit=True
    ) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


def migration_head() -> str:
    """The head revision of the migrations in this checkout, read by Alembic itself,
    so a new migration needs no edit in the tests."""
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert head is not None, "migrations/ has no head revision"
    return head


@contextmanager
def database_at(database_url: str, revision: str) -> Iterator[str]:
    """A database of its own on the test server, migrated to `revision` (for migration
    tests: data stored the old way, then `upgrade_to_head`); dropped afterwards."""

    server = database_url.rsplit("/", 1)[0]
    name = f"meter_sync_test_mig_{secrets.token_hex(4)}"
    asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    try:
        command.upgrade(alembic_config(url), revision)
        yield url
    finally:
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

"""Test fixtures: a real PostgreSQL for every test that touches data.

The server is TEST_DATABASE_URL if set, else the one on 127.0.0.1:5432 if it answers,
else an embedded one this session starts. Each run creates its own database (random
name, migrated with Alembic, dropped at the end); each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import ApiKey, Settings
from app.db import create_engine, session_factory
from app.main import create_app
from app.migrate import upgrade_to_head

ROOT = Path(__file__).resolve().parents[1]
WEBHOOK_SECRET = "test-secret-one"
WEBHOOK_SECRET_2 = "test-secret-two"
READ_KEY = "read-key-123"
OPS_KEY = "ops-key-456"
TABLES = (
    "group_memberships, jobs, market_groups, meters, partner_events, partners, sync_runs, "
    "webhook_events"
)


def _server_url() -> tuple[str, Any]:
    """A server URL without database name, and an embedded server to stop (or None)."""
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


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server, embedded = _server_url()
    name = f"meter_sync_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "leap_webhook_secrets": [SecretStr(WEBHOOK_SECRET)],
        "api_keys": [ApiKey("read", SecretStr(READ_KEY)), ApiKey("ops", SecretStr(OPS_KEY))],
        "state_dir": Path(tempfile.mkdtemp(prefix="meter-sync-state-")),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the database finds it empty."""
    url = (
        request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    )
    yield
    if url is not None:
        with psycopg.connect(
            url.replace("postgresql+asyncpg", "postgresql"), autocommit=True
        ) as conn:
            conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


class LiveServer:
    """The real app served by uvicorn on a free localhost port, in this event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveServer:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


async def serve(settings: Settings) -> LiveServer:
    return LiveServer(create_app(settings))


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    async with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
async def client(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        yield http

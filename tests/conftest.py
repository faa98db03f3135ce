"""Fixtures: a real PostgreSQL for every test that touches data, and the app served live.

Each run creates its own database (random name, migrated with Alembic, dropped at the
end) on the server `tests.support.db.server_url` picks; each test starts from empty
tables. Helpers and constants live in `tests.support`; this file only defines fixtures.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, session_factory
from app.main import create_app
from app.migrate import upgrade_to_head
from tests.support.db import admin, server_url, truncate_all
from tests.support.live import LiveApp, LiveServer
from tests.support.settings import make_settings


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server, embedded = server_url()
    name = f"meter_sync_test_{secrets.token_hex(4)}"
    asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()


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
        truncate_all(url)


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def live_app(database_url: str) -> LiveApp:
    """A factory for "the app served live, and a client for it":

        async with live_app(leap_webhook_header="X-Leap-Token") as (server, client): ...

    Keyword arguments override the test settings (`make_settings`), or pass `settings=`
    whole. `run_worker=True` runs the worker in the app; `client_timeout` is in seconds.
    """

    @asynccontextmanager
    async def start(
        settings: Settings | None = None,
        *,
        run_worker: bool = False,
        client_timeout: float = 30,
        **overrides: Any,
    ) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
        if settings is None:
            settings = make_settings(overrides.pop("database_url", database_url), **overrides)
        elif overrides:
            raise TypeError("pass settings or overrides, not both")
        app = create_app(settings, run_worker=run_worker)
        async with (
            LiveServer(app) as server,
            httpx.AsyncClient(base_url=server.url, timeout=client_timeout) as client,
        ):
            yield server, client

    return start


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    async with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
async def client(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        yield http

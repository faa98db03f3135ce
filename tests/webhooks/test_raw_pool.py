"""The raw pool under the hot path: its size, the wait for a connection, and a statement
cut short (real PostgreSQL; no timing asserted beyond generous bounds)."""

from __future__ import annotations

import asyncio

import pytest

from app.db import create_raw_pool


async def test_statements_share_at_most_size_connections(database_url: str) -> None:
    pool = await create_raw_pool(database_url, size=2)
    try:
        pids = await asyncio.gather(
            *(pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)") for _ in range(8))
        )
        assert len(set(pids)) <= 2
        assert [r["n"] for r in await pool.fetch("SELECT 1 AS n UNION ALL SELECT 2")] == [1, 2]
        assert (await pool.fetchrow("SELECT 3 AS n"))["n"] == 3
    finally:
        await pool.close()


async def test_waiting_for_a_connection_gives_up_with_a_timeout(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.db.POOL_TIMEOUT_S", 0.2)
    pool = await create_raw_pool(database_url, size=1)
    try:
        busy = asyncio.create_task(pool.fetchval("SELECT pg_sleep(2)"))
        await asyncio.sleep(0.3)  # the one connection is taken
        with pytest.raises(TimeoutError):
            await pool.fetchval("SELECT 1")
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        # The cut statement's connection was closed, not reused; a new one serves.
        assert await asyncio.wait_for(pool.fetchval("SELECT 1"), 10) == 1
    finally:
        await pool.close()


async def test_a_failed_statement_keeps_the_connection(database_url: str) -> None:
    pool = await create_raw_pool(database_url, size=1)
    try:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(Exception, match="division by zero"):
            await pool.fetchval("SELECT 1 / 0")
        assert await pool.fetchval("SELECT pg_backend_pid()") == first
    finally:
        await pool.close()

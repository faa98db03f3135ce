"""Small helpers shared by tests: posting deliveries and reading rows back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import OPS_KEY, READ_KEY, WEBHOOK_SECRET

JSON = {"Content-Type": "application/json"}


def secret_headers(secret: str | bytes = WEBHOOK_SECRET) -> dict[str, Any]:
    return {"X-Webhook-Secret": secret, **JSON}


async def deliver(
    client: httpx.AsyncClient, content: bytes, secret: str | bytes = WEBHOOK_SECRET
) -> httpx.Response:
    return await client.post("/webhooks/leap", content=content, headers=secret_headers(secret))


def read_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {READ_KEY}"}


def ops_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_KEY}"}


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within: float = 20, interval: float = 0.1
) -> bool:
    """Poll `check` until it holds or `within` seconds pass; returns its last answer."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(interval)

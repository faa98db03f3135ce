"""Talking to the service over HTTP: posting deliveries, the API keys' headers, health."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.settings import OPS_KEY, READ_KEY, WEBHOOK_SECRET

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


async def healthy(url: str) -> bool:
    """Whether a service at `url` answers its liveness probe (False while it is down)."""
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False

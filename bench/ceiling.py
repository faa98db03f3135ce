"""The minimal correct webhook receiver: the ceiling the service's ingest is compared to.

Run: .venv/bin/python -m bench.ceiling [--port 8002]   (DATABASE_URL, LEAP_WEBHOOK_SECRETS)

Per delivery it does only what any correct receiver must: check the secret header
(constant time), read the body, parse the JSON and take the event id, store the raw event
with one `INSERT ... ON CONFLICT DO NOTHING` into its own table, answer 202 (200 for a
redelivery). Plain ASGI on uvicorn (httptools, uvloop) and one asyncpg pool of the same
size as the service's, one process. No validation of the payload, no effects, no metrics,
no logging: whatever the service spends beyond this is its own cost.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

POOL_SIZE = 16  # the service's raw pool size (app.db.RAW_POOL_SIZE)
MAX_BODY = 1024 * 1024
TABLE = "ceiling_events"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    webhook_event_id uuid PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    body bytea NOT NULL
)"""
INSERT = (
    f"INSERT INTO {TABLE} (webhook_event_id, body) VALUES ($1, $2) "
    "ON CONFLICT (webhook_event_id) DO NOTHING RETURNING 1"
)


async def _no_reset(_: asyncpg.Connection) -> None:
    """No session state is ever set, so asyncpg's reset on release would be a wasted round
    trip (the service's raw pool skips it too)."""


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_app(database_url: str, secrets: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    accepted = [s.strip().encode() for s in secrets.split(",") if s.strip()]
    state: dict[str, asyncpg.Pool] = {}

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                pool = await asyncpg.create_pool(
                    dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_no_reset
                )
                await pool.execute(CREATE_TABLE)
                state["pool"] = pool
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await state["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def authorized(scope: Scope) -> bool:
        presented = next((v for k, v in scope["headers"] if k == b"x-webhook-secret"), b"")
        return any(hmac.compare_digest(presented, secret) for secret in accepted)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        if scope["path"] != "/webhooks/leap" or scope["method"] != "POST":
            await _answer(send, 404, b'{"detail":"not found"}')
            return
        if not authorized(scope):
            await _answer(send, 401, b'{"detail":"unauthorized"}')
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY or message["type"] == "http.disconnect":
                await _answer(send, 413, b'{"detail":"too large"}')
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            event_id = json.loads(raw)["webhook_event_id"]
        except (ValueError, KeyError, TypeError):
            await _answer(send, 400, b'{"detail":"bad body"}')
            return
        try:
            stored = await state["pool"].fetchval(INSERT, event_id, raw)
        except (asyncpg.DataError, ValueError):
            await _answer(send, 422, b'{"detail":"bad event id"}')
            return
        await _answer(send, 202 if stored else 200, b'{"status":"accepted"}')

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    app = build_app(os.environ["DATABASE_URL"], os.environ.get("LEAP_WEBHOOK_SECRETS", ""))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

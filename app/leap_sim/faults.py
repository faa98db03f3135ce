"""Fault injection for the fake's v2 read endpoints, as pure ASGI middleware.

Each request under `path_prefix` draws (from a seeded RNG) whether to add latency and
which failure, if any, to answer with: 429 with `Retry-After`, a 5xx, or a dropped
connection. Failures are checked in that order, each at its own rate.

Two answers Leap gives to a search that finds nothing are injectable too (the search
endpoints ask `empty_search_answer()`): a 404 "Meter not found", or a page without the
`meters` key.

Dropping: ASGI has no "close without answering" message and uvicorn writes the status
line as soon as `http.response.start` is sent, so under uvicorn the middleware reaches
the connection's transport (the ASGI `receive` callable is bound to uvicorn's
request/response cycle, which holds it) and aborts it with SO_LINGER 0: the client sees
a reset with no response bytes. Under any other server it falls back to announcing a
body it never finishes, which the server turns into a closed connection mid-response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

Rate = float


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_rate: Rate = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    rate_429: Rate = Field(0.0, ge=0, le=1)
    retry_after_seconds: int = Field(1, ge=0, le=3600)
    rate_5xx: Rate = Field(0.0, ge=0, le=1)
    status_5xx: int = Field(503, ge=500, le=599)
    rate_drop: Rate = Field(0.0, ge=0, le=1)
    seed: int = 0
    path_prefix: str = "/v2/"
    # searches with no result: answer 404, or a page without `meters`
    empty_search_404_rate: Rate = Field(0.0, ge=0, le=1)
    empty_page_without_meters_rate: Rate = Field(0.0, ge=0, le=1)


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def decide(self) -> tuple[float, str | None]:
        """(seconds of added latency, failure kind or None) for one request."""
        c = self.config
        delay = c.latency_ms / 1000 if self._rng.random() < c.latency_rate else 0.0
        kind: str | None = None
        if self._rng.random() < c.rate_429:
            kind = "429"
        elif self._rng.random() < c.rate_5xx:
            kind = "5xx"
        elif self._rng.random() < c.rate_drop:
            kind = "drop"
        return delay, kind

    def empty_search_answer(self) -> str | None:
        """How to answer a search with no result: "404", "no_meters" or None (a page)."""
        c = self.config
        kind: str | None = None
        if c.empty_search_404_rate and self._rng.random() < c.empty_search_404_rate:
            kind = "404"
        elif (
            c.empty_page_without_meters_rate
            and self._rng.random() < c.empty_page_without_meters_rate
        ):
            kind = "no_meters"
        if kind is not None:
            self.counts[f"empty_search_{kind}"] += 1
        return kind

    def stats(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(), "injected": dict(self.counts)}


async def _send_json(
    send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]]
) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw, "more_body": False})


async def _drop(receive: Receive, send: Send) -> None:
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # let the server notice the disconnect before this app returns
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"meters": [', "more_body": True})


class FaultMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(
            self.injector.config.path_prefix
        ):
            await self.app(scope, receive, send)
            return
        delay, kind = self.injector.decide()
        if delay:
            self.injector.counts["latency"] += 1
            await asyncio.sleep(delay)
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.injector.counts[kind] += 1
        if kind == "429":
            retry_after = str(self.injector.config.retry_after_seconds).encode()
            body = {"title": "Too Many Requests", "status": 429, "details": {}}
            await _send_json(send, 429, body, [(b"retry-after", retry_after)])
        elif kind == "5xx":
            message = "An error happened whilst processing your request"
            await _send_json(send, self.injector.config.status_5xx, message, [])
        else:
            await _drop(receive, send)

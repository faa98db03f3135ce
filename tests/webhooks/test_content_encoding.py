"""`Content-Encoding` on the receiver: gzip read with the limit on the decompressed size,
identity as plain, every other coding a 415; over real HTTP, stored in real PostgreSQL."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import uuid
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dispatch.bodies import encode, group_body, timeslot
from tests.support import events
from tests.support.db import scalar
from tests.support.live import LiveApp
from tests.support.settings import WEBHOOK_SECRET

SMALL_LIMIT = 4096
DISPATCH = "/webhooks/leap/dispatch"


def _headers(encoding: str | None) -> dict[str, str]:
    headers = {"X-Webhook-Secret": WEBHOOK_SECRET, "Content-Type": "application/json"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return headers


async def _post(
    client: httpx.AsyncClient, content: bytes | AsyncIterator[bytes], encoding: str | None
) -> httpx.Response:
    return await client.post("/webhooks/leap", content=content, headers=_headers(encoding))


def _bomb(decompressed_mib: int) -> bytes:
    """Zeros compress about 1000:1: a few tens of KiB that inflate to `decompressed_mib`."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(decompressed_mib)]
    return b"".join(parts) + packer.flush()


def _padded_body(size: int) -> bytes:
    """A valid delivery of exactly `size` bytes (padding in an ignored field)."""
    envelope = json.loads(events.body(events.meter_created()))
    envelope["padding"] = ""
    base = len(json.dumps(envelope).encode())
    envelope["padding"] = "x" * (size - base)
    raw = json.dumps(envelope).encode()
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZip"])
async def test_gzip_body_is_read_and_stored_decompressed(
    client: httpx.AsyncClient, engine: AsyncEngine, encoding: str
) -> None:
    raw = events.body(events.meter_created())
    response = await _post(client, gzip.compress(raw), encoding)
    assert response.status_code == 202, response.text
    assert await scalar(engine, "SELECT count(*) FROM meters") == 1
    assert await scalar(engine, "SELECT body_size FROM webhook_events") == len(raw)


@pytest.mark.parametrize("encoding", [None, "identity"])
async def test_identity_is_plain(client: httpx.AsyncClient, encoding: str | None) -> None:
    response = await _post(client, events.body(events.meter_created()), encoding)
    assert response.status_code == 202


@pytest.mark.parametrize("encoding", ["deflate", "br", "compress", "zstd", "gzip, gzip", "x"])
async def test_other_encodings_are_415_and_nothing_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, encoding: str
) -> None:
    response = await _post(client, gzip.compress(events.body(events.meter_created())), encoding)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "Content-Encoding" in response.json()["detail"]
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0


async def test_limit_applies_to_the_decompressed_size(live_app: LiveApp) -> None:
    async with live_app(webhook_max_body_bytes=SMALL_LIMIT) as (_, client):
        at_limit = await _post(client, gzip.compress(_padded_body(SMALL_LIMIT)), "gzip")
        over = await _post(client, gzip.compress(_padded_body(SMALL_LIMIT + 1)), "gzip")
    assert at_limit.status_code == 202
    assert over.status_code == 413


async def test_gzip_bomb_is_413_with_bounded_memory(live_app: LiveApp, engine: AsyncEngine) -> None:
    bomb = _bomb(256)  # ~250 KiB on the wire, 256 MiB once inflated
    assert len(bomb) < 1024 * 1024
    async with live_app(webhook_max_body_bytes=SMALL_LIMIT) as (_, client):
        tracemalloc.start()
        try:
            response = await _post(client, bomb, "gzip")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 413
    # The server runs in this process: nothing near the inflated size was ever held.
    assert peak < 16 * 1024 * 1024, peak
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0


async def test_streamed_bomb_at_the_default_limit_is_413(client: httpx.AsyncClient) -> None:
    bomb = _bomb(64)  # four times the default 16 MiB limit, sent chunked (no length)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(bomb), 8192):
            yield bomb[start : start + 8192]

    response = await _post(client, chunks(), "gzip")
    assert response.status_code == 413


@pytest.mark.parametrize(
    "content",
    [
        b"this is not gzip at all",
        gzip.compress(events.body(events.meter_created()))[:-12],  # cut short
        gzip.compress(events.body(events.meter_created())) + b"trailing",
    ],
    ids=["not-gzip", "truncated", "trailing-data"],
)
async def test_broken_gzip_is_400_and_nothing_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, content: bytes
) -> None:
    response = await _post(client, content, "gzip")
    assert response.status_code == 400
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 0


async def test_the_dispatch_receiver_reads_gzip_the_same_way(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    raw = encode(
        group_body(uuid.uuid4(), [uuid.uuid4()], [timeslot("market_group_event_id", uuid.uuid4())])
    )
    headers = _headers("gzip")
    first = await client.post(DISPATCH, content=gzip.compress(raw), headers=headers)
    # The log id is the SHA-256 of the decoded body: the plain body again is a duplicate.
    again = await client.post(DISPATCH, content=raw, headers=_headers(None))
    refused = await client.post(DISPATCH, content=raw, headers=_headers("deflate"))
    assert [first.status_code, again.status_code, refused.status_code] == [202, 200, 415]
    assert first.json()["webhook_event_id"] == again.json()["webhook_event_id"]
    assert await scalar(engine, "SELECT count(*) FROM webhook_events") == 1

"""The front door under the attacks of issue 11, with the guarded uvicorn protocol.

The server here is the real app on uvicorn with `GuardedHttpToolsProtocol` and small
limits (16 KiB of headers, 1 s to finish them, 40 connections), so each attack is cheap
to reproduce. bench/attacks.py runs the full-size versions (128 MiB, 20,000 connections).
No timing is asserted: each check is what the server does, with generous waits.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.frontdoor import GuardedHttpToolsProtocol, configure
from app.main import create_app

MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 40
UNFINISHED_HEAD = b"POST /webhooks/leap HTTP/1.1\r\nHost: 127.0.0.1\r\n"
WAIT_S = 15.0  # a bound so a broken guard fails the test instead of hanging it


@dataclass
class FrontDoor:
    url: str
    port: int
    server: uvicorn.Server
    settings: Settings

    def delivery(self) -> tuple[dict[str, str], bytes]:
        body = {
            "webhook_event_id": str(uuid.uuid4()),
            "payload": {
                "webhook_event_type": "meter.created",
                "meter_id": str(uuid.uuid4()),
                "partner_reference": "site-1",
                "transmission_region": "CAISO",
                "meter_type": "UTILITY_METER",
            },
        }
        headers = {
            "content-type": "application/json",
            self.settings.leap_webhook_header: self.settings.leap_webhook_secrets[
                0
            ].get_secret_value(),
        }
        return headers, json.dumps(body).encode()


@pytest.fixture
async def front_door(settings: Settings) -> AsyncIterator[FrontDoor]:
    configure(
        max_header_bytes=MAX_HEADER_BYTES, header_timeout_s=1.0, max_connections=MAX_CONNECTIONS
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        http=GuardedHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield FrontDoor(f"http://127.0.0.1:{port}", port, server, settings)
    finally:
        server.should_exit = True
        await task
        configure()


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UNFINISHED_HEAD)
    await writer.drain()
    return reader, writer


async def test_a_header_over_the_limit_is_refused_with_431(front_door: FrontDoor) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", front_door.port)
    writer.write(UNFINISHED_HEAD + b"X-Filler: " + b"a" * (4 * MAX_HEADER_BYTES) + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), WAIT_S)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_headers_just_under_the_limit_still_reach_the_app(front_door: FrontDoor) -> None:
    headers, body = front_door.delivery()
    headers["x-filler"] = "a" * (MAX_HEADER_BYTES - 1024)
    async with httpx.AsyncClient(base_url=front_door.url, timeout=WAIT_S) as http:
        response = await http.post("/webhooks/leap", content=body, headers=headers)
    assert response.status_code == 202


async def test_a_client_that_never_finishes_its_headers_is_dropped(
    front_door: FrontDoor,
) -> None:
    reader, writer = await _half_open(front_door.port)
    try:
        leftover = await asyncio.wait_for(reader.read(), WAIT_S)
    except ConnectionResetError:  # the guard aborts: a reset is a drop too
        leftover = b""
    writer.close()
    assert leftover == b""  # closed by the server, nothing answered


async def test_a_delivery_gets_through_while_one_client_holds_every_slot(
    front_door: FrontDoor,
) -> None:
    held = [await _half_open(front_door.port) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        headers, body = front_door.delivery()
        async with httpx.AsyncClient(base_url=front_door.url, timeout=WAIT_S) as http:
            response = await http.post("/webhooks/leap", content=body, headers=headers)
        open_now = len(front_door.server.server_state.connections)
    finally:
        for _, writer in held:
            writer.close()
    assert response.status_code == 202
    assert open_now <= MAX_CONNECTIONS


async def test_keep_alive_connections_serve_several_requests(front_door: FrontDoor) -> None:
    async with httpx.AsyncClient(base_url=front_door.url, timeout=WAIT_S) as http:
        statuses = []
        for _ in range(5):
            headers, body = front_door.delivery()
            response = await http.post("/webhooks/leap", content=body, headers=headers)
            statuses.append(response.status_code)
        health = await http.get("/healthz")
    assert statuses == [202] * 5
    assert health.status_code == 200

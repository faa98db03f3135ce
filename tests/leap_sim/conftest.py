"""Fixtures for the fake Leap: the sim and a webhook receiver, both over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from app.leap_sim.server import RunningSim, serve_in_thread
from tests.support.live import LiveServer
from tests.support.sim import API_KEY, Receiver, make_state


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSim]:
    running = serve_in_thread(make_state(time_factor=0.001))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(sim: RunningSim) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """On its own thread: the sim's sender and synchronous tests block this loop."""
    rec = Receiver()
    app = Starlette(routes=[Route("/hook", rec.handle, methods=["POST"])])
    with LiveServer(app, lifespan="off", log_level="warning") as server:
        rec.url = server.url + "/hook"
        yield rec

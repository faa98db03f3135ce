"""The fake Leap's test state, and a webhook receiver for what it sends."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.state import SimState

ANCHOR = datetime(2025, 6, 15, 12, tzinfo=UTC)
API_KEY = "test-sim-key"
N_METERS = 2345
N_GROUPS = 16
SEED = 11


def make_state(
    meters: int = N_METERS, groups: int = N_GROUPS, seed: int = SEED, **sender: Any
) -> SimState:
    return SimState(
        Portfolio(meters, groups, seed, anchor=ANCHOR),
        api_key=API_KEY,
        sender=Sender(**sender),
    )


@dataclass
class Received:
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """A webhook receiver that can fail the first tries of each event."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_times: int = 0
    status_ok: int = 202
    delay: float = 0.0
    _failures: Counter[str] = field(default_factory=Counter)

    def reset(self, fail_times: int = 0, delay: float = 0.0) -> None:
        self.received.clear()
        self._failures.clear()
        self.fail_times = fail_times
        self.delay = delay

    def bodies(self) -> list[Any]:
        return [r.body for r in self.received]

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(dict(request.headers), body, time.monotonic()))
        event_id = str(body.get("webhook_event_id"))
        if self._failures[event_id] < self.fail_times:
            self._failures[event_id] += 1
            return JSONResponse({"error": "not now"}, status_code=500)
        if self.delay:
            await asyncio.sleep(self.delay)
        return JSONResponse({"ok": True}, status_code=self.status_ok)

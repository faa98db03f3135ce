"""Polling until something holds: the tests wait for outcomes, never for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


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


async def wait_for(check: Callable[[], Any], within: float, what: str, poll: float = 0.05) -> None:
    """Poll `check` (sync or async) until truthy; AssertionError naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(poll)

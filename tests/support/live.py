"""The one way tests serve an ASGI app in-process: uvicorn on a free 127.0.0.1 port.

`async with LiveServer(app)` runs it in the test's own event loop (the app under test, so
tests can monkeypatch it and share its loop); `with LiveServer(app)` runs it on a thread
with its own loop, for synchronous tests or for a peer that must answer while the test
blocks. The socket is bound before uvicorn starts, so the port cannot be taken meanwhile.
(The fake Leap is served by `app.leap_sim.server.serve_in_thread`, which the benches use too.)
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import httpx
import uvicorn


def free_port() -> int:
    """A port free right now, for a subprocess that binds it itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1; `url` is known before it starts."""

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "auto",
        log_level: str | None = None,
    ) -> None:
        self.app = app
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None keeps the app's own logging setup (tests read its log lines).
        config = uvicorn.Config(app, lifespan=lifespan, log_level=log_level, log_config=None)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    # ---- in the running event loop -------------------------------------------------------

    async def __aenter__(self) -> LiveServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]))
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()

    # ---- on a thread of its own ----------------------------------------------------------

    def __enter__(self) -> LiveServer:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()


# What the `live_app` fixture returns: `async with live_app(**overrides) as (server, client)`.
LiveApp = Callable[..., AbstractAsyncContextManager[tuple[LiveServer, httpx.AsyncClient]]]

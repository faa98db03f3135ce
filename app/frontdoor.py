"""The front door: limits uvicorn's httptools protocol lacks (chosen by measurement in bench/).

uvicorn (httptools) has no header size limit, no header-read timeout and no connection
cap. This subclass adds the three at the protocol level, before any ASGI code runs:

- header bytes: at most `max_header_bytes` are fed to the parser before the headers are
  complete; past that the client gets 431 and the connection closes. httptools joins
  partial header values by repeated concatenation (cost grows with the square of the
  size), so the check is made *before* feeding, not after.
- header-read timeout: a connection that has not finished its headers within
  `header_timeout_s` of connecting (or of its previous response) is closed.
- connection cap with shedding: above `max_connections`, the longest-waiting connection
  that has not finished its headers (or idles between requests) is closed to make room.
  New connections are never refused, so a real sender still gets in while one client
  holds every slot it can; requests in progress are never shed.

It also writes each answer's head and first body chunk to the socket at once
(`OneWriteCycle`): uvicorn writes the head on `http.response.start` and the body on
`http.response.body`, two system calls and two TCP segments per answer, which was a fifth
of the receiver's CPU under load (docs/decisions.md, "Where the receiver's time goes").

Use: `configure()` in each serving process, then `uvicorn.run(app, **uvicorn_options())`
(`meter-sync serve` does both; see docs/decisions.md, "HTTP server", for the figures).
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


@dataclass
class Limits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 5.0
    max_connections: int = 4096


LIMITS = Limits()
# Connections waiting for (the rest of) a request head, oldest first. One server per
# process (each --workers process has its own), so a module-level registry is enough.
_WAITING: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nrequest header fields too large"
)


def configure(
    max_header_bytes: int = 64 * 1024,
    header_timeout_s: float = 5.0,
    max_connections: int | None = None,
) -> Limits:
    """Set the limits; the connection cap defaults to the fd limit minus headroom."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the OS half of the guard: use every descriptor allowed
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    # Keep room for the database pools, log files and the listening socket.
    ceiling = max(soft - 256, 64)
    LIMITS.max_header_bytes = max_header_bytes
    LIMITS.header_timeout_s = header_timeout_s
    LIMITS.max_connections = min(max_connections or ceiling, ceiling)
    return LIMITS


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _header_bytes = 0
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        while len(self.connections) > LIMITS.max_connections and _WAITING:
            oldest = next(iter(_WAITING))
            if oldest is self:
                break
            oldest._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self in _WAITING:
            room = LIMITS.max_header_bytes - self._header_bytes
            if len(data) > room:
                if room > 0:
                    super().data_received(data[:room])
                if self in _WAITING and not self.transport.is_closing():
                    self._head_done()
                    self.transport.write(_431)
                    self.transport.close()
                    return
                data = data[room:]
                if not data or self.transport.is_closing():
                    return
            else:
                self._header_bytes += len(data)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            # Its task has been created (or queued behind a pipelined one) but has not run
            # yet, so every `send` of this request goes through OneWriteCycle.
            cycle.__class__ = OneWriteCycle

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()

    def _await_head(self) -> None:
        self._head_done()
        self._header_bytes = 0
        _WAITING[self] = None
        self._header_deadline = self.loop.call_later(LIMITS.header_timeout_s, self._drop)

    def _head_done(self) -> None:
        _WAITING.pop(self, None)
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _drop(self) -> None:
        self._head_done()
        if not self.transport.is_closing():
            self.transport.abort()  # frees the descriptor now, no lingering close


class _HeldHead:
    """Stands in for the transport between `http.response.start` and the first body
    write: keeps the head uvicorn writes and sends it with the next write, in one call."""

    __slots__ = ("cycle", "head", "real")

    def __init__(self, cycle: Any, real: asyncio.Transport) -> None:
        self.cycle = cycle
        self.real = real
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.head = data  # the status line and headers
            return
        self.cycle.transport = self.real
        self.real.write(self.head + data)

    def flush(self) -> None:
        """Write the head alone if no body write came (HEAD, an empty answer, a close)."""
        if self.cycle.transport is self:
            self.cycle.transport = self.real
            if self.head is not None and not self.real.is_closing():
                self.real.write(self.head)

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle with the head held until the first body message."""

    async def send(self, message: Any) -> None:
        if message["type"] != "http.response.start" or self.response_started or self.disconnected:
            await super().send(message)
            transport: Any = self.transport
            if isinstance(transport, _HeldHead):
                transport.flush()
            return
        real = self.transport
        held = _HeldHead(self, real)
        self.transport = cast(asyncio.Transport, held)
        try:
            await super().send(message)
        except BaseException:
            self.transport = real
            raise
        if held.head is None:  # nothing was written (e.g. the peer has gone)
            self.transport = real


def uvicorn_options() -> dict[str, object]:
    """What `serve` passes to uvicorn: the guarded protocol and a long accept queue (a
    burst of Leap's retries waits in the kernel rather than being refused)."""
    return {"http": GuardedHttpToolsProtocol, "backlog": 2048}

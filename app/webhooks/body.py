"""Reading a webhook body: declared length, media type, content coding, size as it streams.

Shared by every receiver (`/webhooks/leap`, and the dispatch receiver): each refusal is a
`BodyRefused` carrying its answer, so a receiver only maps it to a response.

`Content-Encoding: gzip` is decompressed incrementally and the limit applies to the
*decompressed* size: each chunk is inflated with `max_length` set to what the limit still
allows (+1 to notice going over), so a small gzip bomb costs at most `limit` bytes of
memory and is refused as soon as it crosses the limit. Other codings are refused (415):
Leap sends plain JSON, and every accepted coding is attack surface.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Literal

from starlette.types import Receive

# A body that trickles in slower than this is refused rather than waited on forever
# (the receiver's deadline while it reads the body; app/webhooks/receiver.py).
BODY_READ_TIMEOUT_S = 10.0
_GZIP = frozenset({"gzip", "x-gzip"})
_IDENTITY = frozenset({"", "identity"})
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not a raw zlib stream

Outcome = Literal["invalid", "too_large", "disconnected"]


class BodyRefused(Exception):
    """The body cannot be read: answer `status` with `detail` (metrics: `outcome`)."""

    def __init__(self, status: int, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.outcome = outcome
        self.detail = detail


class SenderGone(BodyRefused):
    """The sender disconnected before the body was complete: no one reads the answer."""

    def __init__(self) -> None:
        super().__init__(400, "disconnected", "sender disconnected before the body was complete")


def is_json(content_type: str | None) -> bool:
    """A JSON media type, or none declared (read as JSON; a declared other type is not)."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, "too_large", f"body larger than {limit} bytes")


def _decoder(content_encoding: str | None) -> zlib._Decompress | None:
    coding = (content_encoding or "").strip().lower()
    if coding in _IDENTITY:
        return None
    if coding in _GZIP:
        return zlib.decompressobj(wbits=_GZIP_WBITS)
    raise BodyRefused(415, "invalid", "Content-Encoding must be gzip or identity")


def _first(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> list[bytes | None]:
    """The first value of each header in `names` (as Starlette's `Headers.get`), one scan."""
    found: list[bytes | None] = [None] * len(names)
    for name, value in headers:
        if name in names:
            index = names.index(name)
            if found[index] is None:
                found[index] = value
    return found


async def read_body(headers: Iterable[tuple[bytes, bytes]], receive: Receive, limit: int) -> bytes:
    """The JSON body, at most `limit` bytes once decoded, refused as early as possible:
    from the headers when they already say no, else as it streams (never buffered whole).

    The caller bounds the wait (the receiver's deadline, BODY_READ_TIMEOUT_S): a body
    that is not complete in time is its 408."""
    declared, content_type, coding = _first(
        headers, b"content-length", b"content-type", b"content-encoding"
    )
    if declared is not None:
        if not declared.isdigit():
            raise BodyRefused(400, "invalid", "invalid Content-Length")
        if int(declared) > limit:
            raise _too_large(limit)
    if (
        content_type is not None
        and content_type != b"application/json"
        and not is_json(content_type.decode("latin-1"))
    ):
        raise BodyRefused(415, "invalid", "body must be application/json")
    decoder = None if coding is None else _decoder(coding.decode("latin-1"))
    message = await receive()
    chunk = message.get("body", b"")
    if decoder is None and not message.get("more_body", False):
        # The usual delivery: one message, the whole body (disconnected: no body at all).
        if message["type"] != "http.request":
            raise SenderGone
        if len(chunk) > limit:
            raise _too_large(limit)
        return chunk  # type: ignore[no-any-return]
    chunks: list[bytes] = []
    received = size = 0
    while True:
        if message["type"] != "http.request":
            raise SenderGone
        received += len(chunk)
        if decoder is not None and chunk:
            chunk = _inflate(decoder, chunk, limit - size)
        size += len(chunk)
        if size > limit or received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
        message = await receive()
        chunk = message.get("body", b"")
    if decoder is not None and (not decoder.eof or decoder.unused_data):
        raise BodyRefused(400, "invalid", "gzip body is truncated or has trailing data")
    return b"".join(chunks)


def _inflate(decoder: zlib._Decompress, chunk: bytes, allowed: int) -> bytes:
    """Inflate one chunk, producing at most `allowed + 1` bytes (enough to see the limit
    crossed); the caller refuses the body when more than `allowed` comes out."""
    try:
        return decoder.decompress(chunk, allowed + 1)
    except zlib.error:
        raise BodyRefused(400, "invalid", "body is not valid gzip") from None

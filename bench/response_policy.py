"""What the response-policy middleware (security headers, HEAD) costs per request, in-process.

Run: .venv/bin/python -m bench.response_policy [--requests 200000]

A minimal ASGI app that answers like the receiver (start with three headers, one body)
is called directly, with and without `ResponsePolicyMiddleware` around it, interleaved in
rounds so that load from other processes on the machine affects both alike. No network
and no database: this isolates the middleware's own CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.response_policy import ResponsePolicyMiddleware
from bench.common import machine, today

_HEADERS = [
    (b"content-length", b"74"),
    (b"content-type", b"application/json"),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
]
_SCOPE: Scope = {
    "type": "http",
    "method": "POST",
    "path": "/webhooks/leap",
    "headers": [(b"content-type", b"application/json"), (b"x-webhook-secret", b"s" * 32)],
}


async def _receiver_like(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": list(_HEADERS)})
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_: Message) -> None:
    return None


async def _per_request_us(app: ASGIApp, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(_SCOPE), _receive, _send)
    return (time.perf_counter() - started) / requests * 1e6


async def run(requests: int, rounds: int) -> dict[str, float]:
    bare: ASGIApp = _receiver_like
    wrapped: ASGIApp = ResponsePolicyMiddleware(_receiver_like)
    plain, front = [], []
    for _ in range(rounds):
        plain.append(await _per_request_us(bare, requests // rounds))
        front.append(await _per_request_us(wrapped, requests // rounds))
    return {
        "without_us": statistics.median(plain),
        "with_us": statistics.median(front),
        "added_us": statistics.median(f - p for f, p in zip(front, plain, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args.requests, args.rounds))
    print(f"{today()} | {machine()} | {args.requests} calls in {args.rounds} rounds")
    for key, value in result.items():
        print(f"  {key}: {value:.2f}")


if __name__ == "__main__":
    main()

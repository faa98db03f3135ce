"""What every answer gets: security headers, and HEAD wherever GET works.

Pure ASGI (no BaseHTTPMiddleware task per request), wrapped around the whole middleware
stack so that even the 500 written by Starlette's error middleware carries the headers.
The receiver's hot path pays a prefix test and one list concatenation per answer.

- `X-Content-Type-Options: nosniff` everywhere: a browser never guesses a type (the event
  log returns bodies Leap sent).
- Frame protection everywhere (`X-Frame-Options: DENY`, and CSP `frame-ancestors 'none'`
  for browsers that only read CSP): the docs pages hold an API key once authorized.
- `Cache-Control: no-store` on what sits behind a key (`/v1/...`) and on the webhook
  receiver's answers: no shared cache or browser history keeps them.
- `HEAD` is served as a `GET` whose body is dropped: FastAPI's API routes answer only the
  methods they declare, while HTTP wants HEAD wherever GET is (probes use it).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROTECTED_PREFIXES = ("/v1/", "/webhooks/")
_CSP = b"content-security-policy"

_EVERYWHERE: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (_CSP, b"frame-ancestors 'none'"),
)
_NO_STORE = ((b"cache-control", b"no-store"),)
_OPEN_HEADERS = list(_EVERYWHERE)
_PROTECTED_HEADERS = [*_EVERYWHERE, *_NO_STORE]
_OURS = frozenset(name for name, _ in _PROTECTED_HEADERS)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    return _PROTECTED_HEADERS if path.startswith(PROTECTED_PREFIXES) else _OPEN_HEADERS


def _merged(
    given: list[tuple[bytes, bytes]], added: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The app's headers with ours: ours replace the app's value, except a CSP the app
    wrote (e.g. the status page's, with its script nonce), which is kept and gets
    `frame-ancestors 'none'` when it has no frame-ancestors of its own."""
    policy = next((value for name, value in given if name == _CSP), None)
    kept = [h for h in given if h[0] not in _OURS]
    if policy is None:
        return [*kept, *added]
    if b"frame-ancestors" not in policy:
        policy += b"; frame-ancestors 'none'"
    return [*kept, *(h for h in added if h[0] != _CSP), (_CSP, policy)]


class ResponsePolicyMiddleware:
    """Security headers on every answer, and HEAD served as GET (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = security_headers(scope["path"])
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}

        async def send_with_headers(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                given = message.get("headers") or []
                # A header the app set itself (e.g. its own Cache-Control) gives way to ours
                # (Starlette writes names in lower case, as ASGI asks).
                if any(name in _OURS for name, _ in given):
                    message["headers"] = _merged(given, added)
                else:
                    message["headers"] = [*given, *added]
            elif head and kind == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""Logging: one line per record whatever it carries; JSON unless on a terminal.

Secrets never reach a log call: the receiver logs event ids and outcomes, not headers or
bodies. Payload text that does reach a record is escaped, so a newline or a terminal
escape in it cannot start a forged line.

Every line logged while a request is handled carries its `request_id` (the caller's
`X-Request-ID` when it is a sane token, else a generated one, echoed in the response) and,
once the receiver has read it, the `webhook_event_id`: both live in context variables
that a filter on the handler copies onto each record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# uvicorn's `color_message` repeats the message with terminal colours: never wanted here.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# The UUID itself: turned into text only when a line is actually logged.
webhook_event_id: ContextVar[uuid.UUID | None] = ContextVar("webhook_event_id", default=None)

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


class ContextFilter(logging.Filter):
    """Copies the request's ids onto every record (unless the call passed its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        event_id = webhook_event_id.get()
        if event_id is not None and not hasattr(record, "webhook_event_id"):
            record.webhook_event_id = str(event_id)
        return True


class RequestIdMiddleware:
    """Binds a request id for the request's log lines and echoes it as `X-Request-ID`.

    Pure ASGI (no BaseHTTPMiddleware task per request): the receiver's hot path pays a
    header scan, a regex match or 16 random bytes, and a context variable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), None)
        raw = given if given is not None and _SANE_REQUEST_ID.fullmatch(given) else None
        rid = raw.decode("ascii") if raw is not None else os.urandom(16).hex()
        header = (REQUEST_ID_HEADER, raw if raw is not None else rid.encode("ascii"))
        request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ensure_ascii escapes every control character, so the record stays one line.
        return json.dumps(entry, default=str, ensure_ascii=True)


class ConsoleFormatter(logging.Formatter):
    """Readable key=value lines for a terminal, with values escaped like repr()."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().encode("unicode_escape").decode("ascii")
        fields = " ".join(
            f"{k}={str(v).encode('unicode_escape').decode('ascii')}"
            for k, v in _extras(record).items()
        )
        line = f"{datetime.now().strftime('%H:%M:%S')} {record.levelname:<7} {message}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            trace = self.formatException(record.exc_info).encode("unicode_escape").decode("ascii")
            line += f"  exception={trace}"
        return line


def configure(level: str = "INFO", *, json_output: bool | None = None) -> None:
    use_json = not sys.stderr.isatty() if json_output is None else json_output
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)

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
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

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
        header = bind_request_id(scope["headers"])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def bind_request_id(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """Bind the request's id for its log lines (the caller's `X-Request-ID` when it is a
    sane token, else a new one); the header that echoes it. Also used by the webhook
    receivers, which run ahead of this middleware (app/webhooks/receiver.py)."""
    given = next((v for k, v in headers if k == REQUEST_ID_HEADER), None)
    raw = given if given is not None and _SANE_REQUEST_ID.fullmatch(given) else None
    rid = raw.decode("ascii") if raw is not None else os.urandom(16).hex()
    request_id.set(rid)
    return (REQUEST_ID_HEADER, raw if raw is not None else rid.encode("ascii"))


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


# Alembic says these two at INFO each time a MigrationContext is configured, i.e. on
# every /readyz probe: noise, not news. Its "Running upgrade" lines still show.
_ALEMBIC_NOISE = ("Context impl ", "Will assume ")


class DropAlembicChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_ALEMBIC_NOISE))


class DemoteToDebug(logging.Filter):
    """httpx logs every request at INFO ("HTTP Request: GET ..."): Leap calls are DEBUG
    here, so they show only with LOG_LEVEL=DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(record.levelno)


def use_json(log_format: str = "auto", stream: TextIO | None = None) -> bool:
    """`json`, `text`, or `auto`: text on a terminal, JSON otherwise."""
    if log_format == "auto":
        return not (stream or sys.stderr).isatty()
    return log_format == "json"


def configure(
    level: str = "INFO",
    log_format: str = "auto",
    *,
    json_output: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    as_json = use_json(log_format, stream) if json_output is None else json_output
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # No access log: probes (/healthz, /readyz, /metrics) every few seconds would drown
    # everything else; requests that go wrong log their own lines.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    _add_once(logging.getLogger("alembic.runtime.migration"), DropAlembicChatter())
    for name in ("httpx", "httpcore"):
        _add_once(logging.getLogger(name), DemoteToDebug())


def _add_once(logger: logging.Logger, new: logging.Filter) -> None:
    logger.filters[:] = [f for f in logger.filters if type(f) is not type(new)]
    logger.addFilter(new)


def banner(settings: Settings, scheme: str, host: str, port: int) -> list[str]:
    """What `serve` prints once it is about to listen: where to go, and in which mode."""
    everywhere = host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound
    shown = "127.0.0.1" if everywhere else (f"[{host}]" if ":" in host else host)
    base = f"{scheme}://{shown}:{port}"
    mode = (
        "api (reconciling with Leap's API)"
        if settings.api_mode == "api"
        else "webhook-only (LEAP_API_KEY unset: no enrichment, no reconciliation)"
    )
    return [
        f"meter-sync on {base}" + (" (all interfaces)" if everywhere else ""),
        f"  status page  {base}/",
        f"  API docs     {base}/docs",
        f"  webhooks     POST {base}/webhooks/leap",
        f"  mode         {mode}",
    ]

"""Logging: one line per record whatever it carries; JSON unless on a terminal.

Secrets never reach a log call: the receiver logs event ids and outcomes, not headers or
bodies. Payload text that does reach a record is escaped, so a newline or a terminal
escape in it cannot start a forged line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)

"""One log line when the database becomes unusable, one when it is back.

Every part of the service meets an outage on its own (requests, the receiver, each worker
loop, the probes): they all report here, so an outage of an hour logs two lines, not one
traceback per request or per loop turn every two seconds.
"""

from __future__ import annotations

import logging
import time

from app.db import describe_database_error, is_unmigrated

log = logging.getLogger("meter_sync.database")


class DatabaseOutage:
    """Process-wide state: healthy, or down for a reason (unreachable, not migrated...)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._kind: str | None = None
        self._since = 0.0

    @property
    def is_down(self) -> bool:
        return self.reason is not None

    def failed(self, exc: BaseException) -> str:
        """Record a database error; logs only when the reason changes. Returns the reason."""
        reason = describe_database_error(exc) or f"database error: {type(exc).__name__}"
        self.down(reason, "schema" if is_unmigrated(exc) else "connection")
        return reason

    def down(self, reason: str, kind: str = "schema") -> None:
        """`kind` groups reasons worded differently (a probe knows the migration, a
        failed statement only that a table is missing): one line per kind."""
        if kind == self._kind:
            return
        if self.reason is None:
            self._since = time.monotonic()
        self.reason, self._kind = reason, kind
        log.error("database unavailable: %s (answering 503 until it is back)", reason)

    def up(self) -> None:
        if self.reason is None:
            return
        self.reason = self._kind = None
        log.warning("database available again after %.0f s", time.monotonic() - self._since)


outage = DatabaseOutage()

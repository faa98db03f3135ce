"""The one clock: every "now" in the service comes from here (tests may patch it)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)

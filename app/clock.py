"""The one clock: every "now" in the service comes from here (tests may patch it)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_z(value: datetime) -> str:
    """One spelling per instant: UTC with `Z`, fractions only when there are any (Leap
    writes one instant as `...Z`, `...+00:00` or `....000Z`; stored, they must compare
    equal as text)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

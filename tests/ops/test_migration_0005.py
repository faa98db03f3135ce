"""Migration 0005 on data the first round stored: infinite instants repaired, the trade
dates of existing memberships filled by each window's own rule, first completions kept."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from app.migrate import upgrade_to_head
from tests.support.db import database_at

GROUP = "10000000-0000-0000-0000-000000000001"
CAISO_METER = "11111111-1111-1111-1111-111111111111"
UNKNOWN_METER = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
def old_database(database_url: str) -> Iterator[str]:
    """A database of its own, migrated to the first round's head (0004)."""
    with database_at(database_url, "0004") as url:
        yield url


def _sql(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.replace("postgresql+asyncpg", "postgresql"), autocommit=True)


def test_0005_repairs_infinite_instants_and_fills_trade_dates(old_database: str) -> None:
    with _sql(old_database) as conn:
        conn.execute(
            "INSERT INTO meters (meter_id, transmission_region, leap_updated_at) "
            "VALUES (%s, 'CAISO', '-infinity')",
            [CAISO_METER],
        )
        conn.execute("INSERT INTO market_groups (market_group_id, name) VALUES (%s, 'G')", [GROUP])
        rows = [
            # A webhook window as Leap sends it: October, ending when the group becomes
            # inactive (November 1, Pacific midnight).
            (GROUP, "2024-10-01T07:00:00Z", "2024-11-01T07:00:00Z", "webhook", CAISO_METER),
            # A delivery period: its end is the start of its last day (October 31).
            (GROUP, "2024-10-01T07:00:00Z", "2024-10-31T07:00:00Z", "enrollment", CAISO_METER),
            # What the first round stored for year 1: -infinity, which no read survived.
            (GROUP, "-infinity", "2024-11-01T07:00:00Z", "webhook", UNKNOWN_METER),
        ]
        for row in rows:
            conn.execute(
                "INSERT INTO group_memberships (market_group_id, window_start, window_end, "
                "source, meter_id) VALUES (%s, %s, %s, %s, %s)",
                row,
            )
        conn.execute("INSERT INTO partners (partner_reference) VALUES ('ref-1')")
        for status in ("COMPLETED", "INITIATED"):
            conn.execute(
                "INSERT INTO partner_events (partner_reference, kind, status) "
                "VALUES ('ref-1', 'authorization', %s)",
                [status],
            )

    upgrade_to_head(old_database)

    with _sql(old_database) as conn:
        days = conn.execute(
            "SELECT source, first_day::text, last_day::text FROM group_memberships ORDER BY source"
        ).fetchall()
        assert days == [
            ("enrollment", "2024-10-01", "2024-10-31"),
            ("webhook", "2024-10-01", "2024-10-31"),
        ]
        infinite = conn.execute(
            "SELECT count(*) FROM group_memberships "
            "WHERE NOT isfinite(window_start) OR NOT isfinite(window_end)"
        ).fetchone()
        assert infinite == (0,)
        version = conn.execute(
            "SELECT leap_updated_at FROM meters WHERE meter_id = %s", [CAISO_METER]
        ).fetchone()
        assert version == (None,)
        completed = conn.execute(
            "SELECT authorization_completed_at IS NOT NULL FROM partners"
        ).fetchone()
        assert completed == (True,)

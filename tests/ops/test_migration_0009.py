"""Migration 0009 on data stored before it: every membership row gets its meter's
reference and archived flag, and `unbeaten` by the ranking rosters use."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from app.migrate import upgrade_to_head
from tests.support.db import database_at

OCTOBER_GROUP = "10000000-0000-0000-0000-000000000001"
LATE_GROUP = "10000000-0000-0000-0000-000000000002"
KNOWN = "11111111-1111-1111-1111-111111111111"
ARCHIVED = "22222222-2222-2222-2222-222222222222"
UNKNOWN = "33333333-3333-3333-3333-333333333333"


@pytest.fixture
def database_at_0008(database_url: str) -> Iterator[str]:
    with database_at(database_url, "0008") as url:
        yield url


def test_0009_fills_copies_and_unbeaten(database_at_0008: str) -> None:
    with psycopg.connect(database_at_0008.replace("+asyncpg", ""), autocommit=True) as conn:
        conn.execute("INSERT INTO partners (partner_reference) VALUES ('site-k'), ('site-a')")
        conn.execute(
            "INSERT INTO meters (meter_id, partner_reference, is_archived) "
            "VALUES (%s, 'site-k', false), (%s, 'site-a', true)",
            [KNOWN, ARCHIVED],
        )
        rows = [
            # October for all three; the known meter also in a group from the 16th, which
            # outranks October there (later start).
            (OCTOBER_GROUP, "2024-10-01T07:00:00Z", KNOWN, "2024-10-01", 1),
            (OCTOBER_GROUP, "2024-10-01T07:00:00Z", ARCHIVED, "2024-10-01", 1),
            (OCTOBER_GROUP, "2024-10-01T07:00:00Z", UNKNOWN, "2024-10-01", 1),
            (LATE_GROUP, "2024-10-16T07:00:00Z", KNOWN, "2024-10-16", 2),
        ]
        for group, start, meter, first_day, seq in rows:
            conn.execute(
                "INSERT INTO group_memberships (market_group_id, window_start, window_end, "
                "source, meter_id, first_day, last_day, seq) "
                "VALUES (%s, %s, '2024-11-01T07:00:00Z', 'webhook', %s, %s, '2024-10-31', %s)",
                [group, start, meter, first_day, seq],
            )

    upgrade_to_head(database_at_0008)

    with psycopg.connect(database_at_0008.replace("+asyncpg", ""), autocommit=True) as conn:
        found = conn.execute(
            "SELECT market_group_id::text, meter_id::text, partner_reference, meter_archived, "
            "unbeaten FROM group_memberships ORDER BY seq, meter_id"
        ).fetchall()
        assert found == [
            (OCTOBER_GROUP, KNOWN, "site-k", False, False),
            (OCTOBER_GROUP, ARCHIVED, "site-a", True, True),
            (OCTOBER_GROUP, UNKNOWN, None, False, True),
            (LATE_GROUP, KNOWN, "site-k", False, True),
        ]
        waiting = conn.execute(
            "SELECT count(*) FROM group_memberships WHERE unbeaten IS NULL"
        ).fetchone()
        assert waiting == (0,)

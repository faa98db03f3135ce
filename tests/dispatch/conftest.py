"""Dispatch tests: the dispatch tables are emptied after each test that used the database
(the shared fixture's TRUNCATE list predates them)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

DISPATCH_TABLES = "dispatch_drifts, dispatches, dispatch_set_meters, dispatch_meter_sets"


@pytest.fixture(autouse=True)
def _clean_dispatch_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    url = (
        request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    )
    yield
    if url is not None:
        with psycopg.connect(
            url.replace("postgresql+asyncpg", "postgresql"), autocommit=True
        ) as conn:
            conn.execute(f"TRUNCATE {DISPATCH_TABLES} RESTART IDENTITY CASCADE")

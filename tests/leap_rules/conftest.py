"""The Leap-rule tests that read rosters run twice: on rows as written and on rows the
worker's confirm round has confirmed (app/groups/copies.py): both must read Leap's way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.leap_rules.rest import ReadPath


@pytest.fixture(params=["as-written", "confirmed"])
def both_read_paths(request: pytest.FixtureRequest, engine: AsyncEngine) -> Iterator[str]:
    ReadPath.engine = engine if request.param == "confirmed" else None
    try:
        yield str(request.param)
    finally:
        ReadPath.engine = None

"""Small REST helpers for the Leap-rule tests: deliver an event, read what the API says."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.groups import copies
from tests.support import events
from tests.support.http import deliver, ops_auth, read_auth


async def send(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    """Deliver one event in Leap's envelope; Leap must get a 2xx for it."""
    response = await deliver(client, events.body(payload))
    assert response.status_code == 202, response.text
    return response


class ReadPath:
    """Which path reads take: as written (membership rows unconfirmed, as before the
    worker's confirm round) or confirmed first (`engine` set: `copies.confirm` runs
    before each read, so rosters read the rows' copies and `unbeaten` flags)."""

    engine: AsyncEngine | None = None


async def get(client: httpx.AsyncClient, url: str, *, ops: bool = False) -> Any:
    if ReadPath.engine is not None:
        await copies.confirm(ReadPath.engine)
    response = await client.get(url, headers=ops_auth() if ops else read_auth())
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    return response.json()


async def roster(client: httpx.AsyncClient, group: str, day: str | None = None) -> list[str]:
    """meter_ids in `group`'s roster on `day` (all pages), sorted."""
    query = f"?trade_date={day}" if day else ""
    page = await get(client, f"/v1/groups/{group}/meters{query}")
    return sorted(m["meter_id"] for m in page["items"])


async def group_by_day(
    client: httpx.AsyncClient, meter: str, first: str, last: str
) -> dict[str, Any]:
    """trade_date -> market_group_id from the meter's participation."""
    answer = await get(client, f"/v1/meters/{meter}/participation?from={first}&to={last}")
    return {p["trade_date"]: p["market_group_id"] for p in answer["participation"]}


def instant(value: str | None) -> datetime | None:
    """An ISO 8601 instant as an aware datetime, whatever its spelling (Z, +00:00, fractions)."""
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def timeline(view: dict[str, Any]) -> list[tuple[str, datetime | None, datetime | None]]:
    """The enrollment view's participation preferences as (preference, start, end)."""
    return [
        (p["participation_preference"], instant(p["start_time"]), instant(p["end_time"]))
        for p in view["participation_preferences"]
    ]

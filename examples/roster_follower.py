"""An example reader of the change feed: a local copy of market-group rosters.

It keeps, for each trade date it follows, every group's roster (meter -> partner
reference) and keeps it current from GET /v1/changes, re-reading only what a change
names:

- `group.changed` (a group, from `first_trade_date` to `last_trade_date`): that group's
  rosters on those dates are read again. A meter that joined or left one of them may
  have left or joined another group's roster that day (a meter is in one group a day),
  so such meters are looked at one by one, as below;
- any change about a meter (`meter.*`, `enrollment.changed`): the meter is looked at
  again: its record (archived? its reference) and its group on each followed date
  (/v1/meters/{id}/participation), and placed accordingly. A meter the service does not
  know (a group listed it before Leap told of it) has no record: the rosters that hold it
  are read again instead.

Every read happens after the change was committed (the feed shows nothing earlier), so
once the reader has consumed the feed its copy is what the service has. Meters named in
one page are refreshed once. A production reader would also store its cursor with its
copy (in one transaction) to resume after a restart; this one starts from the start of
the feed, so it needs every change since the service's first, or a snapshot to start from.

Run: python -m examples.roster_follower --url http://127.0.0.1:8000 --key KEY \
         --dates 2025-07-01,2025-07-02
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from datetime import date
from typing import Any

import httpx

MeterId = str
GroupId = str
Rosters = dict[tuple[GroupId, date], dict[MeterId, str | None]]
METER_TYPES = frozenset(
    {"meter.upserted", "meter.linked", "meter.unlinked", "meter.archived", "enrollment.changed"}
)


class RosterFollower:
    def __init__(self, client: httpx.AsyncClient, dates: Iterable[date]) -> None:
        self.client = client
        self.dates = sorted(set(dates))
        self.rosters: Rosters = {}
        self.cursor: str | None = None

    # ---- following ---------------------------------------------------------------------

    async def step(self, wait: float = 10.0) -> int:
        """Read one page of changes (waiting up to `wait` s for one) and apply it."""
        params: dict[str, Any] = {"limit": 1000, "wait": wait}
        if self.cursor is not None:
            params["after"] = self.cursor
        response = await self.client.get("/v1/changes", params=params)
        response.raise_for_status()
        page = response.json()
        await self.apply(page["items"])
        self.cursor = page["next_cursor"]
        return len(page["items"])

    async def apply(self, changes: list[dict[str, Any]]) -> None:
        meters: set[MeterId] = set()
        group_days: set[tuple[GroupId, date]] = set()
        for change in changes:
            if change["type"] == "group.changed":
                first = date.fromisoformat(change["summary"]["first_trade_date"])
                last = date.fromisoformat(change["summary"]["last_trade_date"])
                group = change["market_group_id"]
                group_days |= {(group, d) for d in self.dates if first <= d <= last}
            elif change["type"] in METER_TYPES and change["meter_id"] is not None:
                meters.add(change["meter_id"])
        for key in sorted(group_days):
            meters |= await self._reread_roster(*key)
        for meter_id in sorted(meters):
            await self._refresh_meter(meter_id)

    # ---- re-reading --------------------------------------------------------------------

    async def _reread_roster(self, group: GroupId, day: date) -> set[MeterId]:
        """Replace one roster by the service's; the meters that joined or left it."""
        fresh = await self.roster(group, day)
        before = self.rosters.get((group, day), {})
        self._set_roster(group, day, fresh)
        return set(fresh).symmetric_difference(before)

    async def _refresh_meter(self, meter_id: MeterId) -> None:
        meter = await self.client.get(f"/v1/meters/{meter_id}")
        if meter.status_code == 404:
            for group, day in [k for k, roster in self.rosters.items() if meter_id in roster]:
                await self._reread_roster(group, day)
            return
        meter.raise_for_status()
        record = meter.json()
        participation = await self.client.get(
            f"/v1/meters/{meter_id}/participation",
            params={"from": self.dates[0].isoformat(), "to": self.dates[-1].isoformat()},
        )
        participation.raise_for_status()
        group_on: dict[date, GroupId] = {
            date.fromisoformat(p["trade_date"]): p["market_group_id"]
            for p in participation.json()["participation"]
            if p["market_group_id"] is not None
        }
        for day in self.dates:
            for (_, roster_day), roster in self.rosters.items():
                if roster_day == day:
                    roster.pop(meter_id, None)
            winner = group_on.get(day)
            if winner is not None and not record["is_archived"]:
                self.rosters.setdefault((winner, day), {})[meter_id] = record["partner_reference"]
        self._drop_empty()

    def _set_roster(self, group: GroupId, day: date, roster: dict[MeterId, str | None]) -> None:
        self.rosters[(group, day)] = roster
        self._drop_empty()

    def _drop_empty(self) -> None:
        for key in [k for k, roster in self.rosters.items() if not roster]:
            del self.rosters[key]

    async def roster(self, group: GroupId, day: date) -> dict[MeterId, str | None]:
        """The service's roster of `group` on `day`, every page."""
        members: dict[MeterId, str | None] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"trade_date": day.isoformat(), "limit": 10_000}
            if cursor is not None:
                params["cursor"] = cursor
            response = await self.client.get(f"/v1/groups/{group}/meters", params=params)
            if response.status_code == 404:
                return {}
            response.raise_for_status()
            page = response.json()
            members |= {m["meter_id"]: m["partner_reference"] for m in page["items"]}
            cursor = page["next_cursor"]
            if cursor is None:
                return members


async def service_rosters(client: httpx.AsyncClient, dates: Iterable[date]) -> Rosters:
    """Every non-empty roster the service has on `dates` (to compare a copy with)."""
    reader = RosterFollower(client, dates)
    rosters: Rosters = {}
    for day in reader.dates:
        response = await client.get("/v1/groups", params={"trade_date": day.isoformat()})
        response.raise_for_status()
        for group in response.json()["items"]:
            roster = await reader.roster(group["market_group_id"], day)
            if roster:
                rosters[(group["market_group_id"], day)] = roster
    return rosters


async def _main(url: str, key: str, dates: list[date]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        follower = RosterFollower(client, dates)
        while True:
            if await follower.step(wait=30):
                sizes = {f"{g[:8]}@{d}": len(r) for (g, d), r in sorted(follower.rosters.items())}
                print(follower.cursor, sizes, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Follow market-group rosters from the feed.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="an API key of scope read")
    parser.add_argument("--dates", required=True, help="trade dates, comma-separated")
    args = parser.parse_args()
    dates = [date.fromisoformat(d) for d in args.dates.split(",")]
    asyncio.run(_main(args.url, args.key, dates))


if __name__ == "__main__":
    main()

"""Time to store and apply one meter.enrollment.group.updated carrying 100k meter ids.

Run: .venv/bin/python -m bench.group_updated [--members 100000] [--rounds 3]

Posts over HTTP to meter-sync in its own process (so the time includes reading, parsing,
validating, storing and applying) against a fresh database. Each round sends: a new
roster (100k inserts), a replacement by a different 100k (100k deletes + 100k inserts),
and the same roster again (no change). The roster read back afterwards is timed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import httpx

from bench.common import OPS_KEY, fresh_database, machine, post_delivery, serve, today

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"


def event(members: list[str]) -> bytes:
    return json.dumps(
        {
            "webhook_event_id": str(uuid.uuid4()),
            "payload": {
                "webhook_event_type": "meter.enrollment.group.updated",
                "market_group_id": GROUP,
                "market_group_name": "BENCH_GROUP",
                "start_date_time": "2024-10-01T07:00:00Z",
                "end_date_time": "2024-10-31T07:00:00Z",
                "meter_ids": members,
            },
        }
    ).encode()


def post(client: httpx.Client, body: bytes) -> float:
    return post_delivery(client, "/webhooks/leap", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"new": [], "replace": [], "same": [], "roster_read": []}
    with fresh_database("bench_group") as url, serve(url) as service:
        client = httpx.Client(base_url=service.url, timeout=60)
        size = 0
        for _ in range(args.rounds):
            first = [str(uuid.uuid4()) for _ in range(args.members)]
            second = [str(uuid.uuid4()) for _ in range(args.members)]
            body = event(first)
            size = len(body)
            timings["new"].append(post(client, body))
            timings["replace"].append(post(client, event(second)))
            timings["same"].append(post(client, event(second)))
            started = time.perf_counter()
            roster = client.get(
                f"/v1/groups/{GROUP}/meters",
                params={"trade_date": "2024-10-15", "limit": args.members},
                headers={"Authorization": f"Bearer {OPS_KEY}"},
            )
            timings["roster_read"].append(time.perf_counter() - started)
            if len(roster.json()["items"]) != args.members:
                raise RuntimeError("roster read back is incomplete")
            # Start the next round from an empty window.
            post(client, event([]))
    print(f"{today()} | {machine()} | {args.members} meter ids, body {size / 1e6:.1f} MB")
    for name, values in timings.items():
        print(
            f"  {name:<12} median {statistics.median(values) * 1000:7.0f} ms"
            f"   max {max(values) * 1000:7.0f} ms   ({len(values)} runs)"
        )


if __name__ == "__main__":
    main()

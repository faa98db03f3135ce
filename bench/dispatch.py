"""Dispatch at scale: a 100k-meter group dispatch end to end over HTTP, and the partner's
"what must my asset do" lookup with 10k stored dispatches.

Run: .venv/bin/python -m bench.dispatch [--meters 1000000] [--rounds 3] [--requests 2000]
(`--rounds 0`: the partner lookup only.)

Loads N meters and a 100k-member market group with SQL (as bench.lookups does), then
from a client in another process:
- posts group dispatches listing the 100k members minus one plus a stranger (a drift of
  2), each round a new list (100k ids stored) and then the same list for a new timeslot
  (the stored list is reused): stored, timeslot upserted and drift computed against the
  100k roster before the answer. The drift is read back to check it.
- stores 10k meter dispatches (SQL) and asks
  `GET /v1/partner-references/{ref}/dispatches` for random references.
Goals (issue 10): group dispatch < 1 s end to end; partner lookup p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid

import httpx
import psycopg

from bench.common import (
    OPS_KEY,
    confirm_membership_copies,
    fresh_database,
    machine,
    post_delivery,
    serve,
    today,
)
from bench.lookups import ANALYZE, CHECKPOINT, GROUP, LOAD, UNKNOWN_GROUP, meter_id, summary, timed

MEMBERS = 100_000

STORE_DISPATCHES = [
    """
    INSERT INTO dispatch_meter_sets (set_id, meter_count)
    SELECT i, 1 FROM generate_series(1, %(k)s) AS i
    """,
    """
    INSERT INTO dispatch_set_meters (set_id, meter_id)
    SELECT i, md5(((i * 97) %% %(n)s + 1)::text)::uuid FROM generate_series(1, %(k)s) AS i
    """,
    """
    INSERT INTO dispatches (kind, dispatch_event_id, integration_test, meter_set_id,
        start_time, end_time, trade_date, trade_date_start, energy_kw, nomination_kw,
        cancelled, programs, priority, is_voluntary, performance_compensation_cap,
        dispatch_event_types, communication_test, source)
    SELECT 'meter', md5('dispatch-' || i)::uuid, false, i,
           '2024-10-01T18:00:00Z'::timestamptz + (i %% 30) * interval '1 day',
           '2024-10-01T19:00:00Z'::timestamptz + (i %% 30) * interval '1 day',
           DATE '2024-10-01' + (i %% 30), '2024-10-01T07:00:00Z'::timestamptz
               + (i %% 30) * interval '1 day',
           10, 10, false, ARRAY['CCA'], 1, false, 'up-to-nomination', ARRAY['day-ahead'],
           false, 'webhook'
    FROM generate_series(1, %(k)s) AS i
    """,
    "SELECT setval(pg_get_serial_sequence('dispatch_meter_sets', 'set_id'), %(k)s)",
    "ANALYZE",
]


def group_dispatch(listed: list[str], event_id: str) -> bytes:
    slot = {
        "market_group_event_id": event_id,
        "start_time": "2024-10-15T18:00:00Z",
        "end_time": "2024-10-15T19:00:00Z",
        "energy_kw": 1000,
        "nomination_kw": 1000,
        "cancelled": False,
        "programs": ["CCA"],
        "priority": 1,
        "is_voluntary": False,
        "performance_compensation_cap": "up-to-nomination",
        "dispatch_event_types": ["day-ahead"],
    }
    body = {
        "group_dispatches": [{"market_group_id": GROUP, "meter_ids": listed, "timeslots": [slot]}]
    }
    return json.dumps(body).encode()


def post(client: httpx.Client, body: bytes) -> float:
    return post_delivery(client, "/webhooks/leap/dispatch", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dispatches", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(3)
    members = [str(meter_id(i)) for i in range(1, MEMBERS + 1)]
    timings: dict[str, list[float]] = {"new list": [], "same list": []}
    with fresh_database("bench_dispatch") as url:
        started = time.perf_counter()
        with psycopg.connect(url.replace("+asyncpg", ""), autocommit=True) as conn:
            for statement in LOAD:
                conn.execute(
                    statement, {"n": args.meters, "group": GROUP, "unknown_group": UNKNOWN_GROUP}
                )
            for statement in STORE_DISPATCHES:
                conn.execute(statement, {"n": args.meters, "k": args.dispatches})
        confirm_membership_copies(url)
        with psycopg.connect(url.replace("+asyncpg", ""), autocommit=True) as conn:
            conn.execute(ANALYZE)
            conn.execute(CHECKPOINT)
        load_s = time.perf_counter() - started
        with serve(url) as service:
            client = httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {OPS_KEY}"}, timeout=60
            )
            size = 0
            for _ in range(args.rounds):
                stranger = str(uuid.uuid4())
                listed = [*members[1:], stranger]
                first = str(uuid.uuid4())
                body = group_dispatch(listed, first)
                size = len(body)
                timings["new list"].append(post(client, body))
                timings["same list"].append(post(client, group_dispatch(listed, str(uuid.uuid4()))))
                drift = client.get(f"/v1/dispatches/{first}").json()["drift"]
                if drift["leap_only"] != [stranger] or drift["local_only"] != [members[0]]:
                    raise RuntimeError(f"unexpected drift {drift}")
            refs = [f"site-{(i * 97) % args.meters + 1}" for i in range(1, args.dispatches + 1)]
            picks = [rng.choice(refs) for _ in range(args.requests)]
            for ref in picks[:200]:  # warm-up
                timed(client, f"/v1/partner-references/{ref}/dispatches")
            lookups = [timed(client, f"/v1/partner-references/{ref}/dispatches") for ref in picks]
    print(
        f"{today()} | {machine()} | {args.meters} meters, {args.dispatches} stored dispatches,"
        f" loaded in {load_s:.0f} s"
    )
    if args.rounds:
        print(f"  group dispatch of {MEMBERS} meter ids (body {size / 1e6:.1f} MB), drift checked:")
    for name, values in timings.items() if args.rounds else ():
        print(
            f"    {name:<10} median {statistics.median(values) * 1000:7.0f} ms"
            f"   max {max(values) * 1000:7.0f} ms   ({len(values)} runs)"
        )
    print(summary("partner dispatches lookup", lookups))


if __name__ == "__main__":
    main()

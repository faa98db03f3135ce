"""Read latency at scale: 1,000,000 meters loaded in bulk, then lookups over HTTP.

Run: .venv/bin/python -m bench.lookups [--meters 1000000] [--requests 2000]

Loads N meters with SQL (a Leap record each; ids random-looking like Leap's, region and
status independent of each other), their partner records and a 100k-member market
group, then measures from one client in another process: meter by id, partner by
reference, a filtered /v1/meters page, and the 100k roster.
Also the group of one meter on a date (participation for one day) and the roster of a
100k group whose members no meter row knows yet. `--fresh` skips ANALYZE, as on a new
install. `--all-grouped` also puts every other meter in one of nine more October groups,
as a fully grouped installation has them (1.1M membership rows instead of 200k).
Goals: lookups p99 < 5 ms; roster < 300 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
import uuid

import httpx
import psycopg

from bench.common import OPS_KEY, confirm_membership_copies, fresh_database, machine, serve, today

GROUP = "406720c2-0175-4137-9ff1-1641702292d4"
UNKNOWN_GROUP = "9e1d3b52-6a0c-4f8e-b2d7-51c4a8f0e633"
REGIONS = ["CAISO", "ERCOT", "NYISO", "PJM", "ISONE", "SERC", "WECC_SW", "WECC_PC"]

LOAD = [
    """
    INSERT INTO partners (partner_reference)
    SELECT 'site-' || i FROM generate_series(1, %(n)s) AS i
    """,
    """
    INSERT INTO meters (meter_id, partner_reference, transmission_region, meter_type,
                        enrollment_status, utility_name, load_zone, leap_meter,
                        leap_updated_at)
    SELECT md5(i::text)::uuid,
           'site-' || i,
           (ARRAY['CAISO','ERCOT','NYISO','PJM','ISONE','SERC','WECC_SW','WECC_PC'])[1 + i %% 8],
           'UTILITY_METER',
           (ARRAY['ACTIVE','ELIGIBLE','PENDING','INELIGIBLE'])[1 + (i / 8) %% 4],
           'UTILITY_' || ((i / 32) %% 40), 'ZONE_' || ((i / 1280) %% 25),
           jsonb_build_object('meter_id', i,
                              'site', jsonb_build_object('load_zone', 'ZONE_' || (i %% 25)),
                              'utility',
                              jsonb_build_object('utility_name', 'UTILITY_' || (i %% 40)),
                              'customer', jsonb_build_object('end_customer_name', 'Customer ' || i,
                                                             'street_1', i || ' Main St',
                                                             'city', 'Springfield')),
           now() - (i %% 1000) * interval '1 minute'
    FROM generate_series(1, %(n)s) AS i
    """,
    """
    INSERT INTO market_groups (market_group_id, name) VALUES (%(group)s, 'BENCH_GROUP')
    """,
    """
    INSERT INTO market_groups (market_group_id, name, window_start, window_end, time_zone)
    VALUES (%(unknown_group)s, 'UNKNOWN_MEMBERS', '2024-10-01T07:00:00Z',
            '2024-11-01T07:00:00Z', 'America/Los_Angeles')
    """,
    # October's group as Leap sends it (ends when it becomes inactive, Nov 1), with the
    # trade dates it covers as group.updated writes them.
    """
    INSERT INTO group_memberships (market_group_id, window_start, window_end, source, meter_id,
                                   first_day, last_day, seq)
    SELECT %(group)s, '2024-10-01T07:00:00Z', '2024-11-01T07:00:00Z', 'webhook',
           md5(i::text)::uuid, '2024-10-01', '2024-10-31', 1
    FROM generate_series(1, 100000) AS i
    """,
    # A second group of 100k members no meter row knows yet (webhook-only mode).
    """
    INSERT INTO group_memberships (market_group_id, window_start, window_end, source, meter_id,
                                   first_day, last_day, seq)
    SELECT %(unknown_group)s, '2024-10-01T07:00:00Z', '2024-11-01T07:00:00Z', 'webhook',
           md5('unknown' || i)::uuid, '2024-10-01', '2024-10-31', 2
    FROM generate_series(1, 100000) AS i
    """,
]
ANALYZE = "ANALYZE"
# The load leaves ~1 GB of dirty pages: written out now, so the checkpointer is not
# flushing them while the first lookups (meter by id) are timed.
CHECKPOINT = "CHECKPOINT"

# --all-grouped: meters 100,001..N in nine other groups over the same October window.
ALL_GROUPED = [
    """
    INSERT INTO market_groups (market_group_id, name)
    SELECT md5('other-group-' || g)::uuid, 'OTHER_' || g FROM generate_series(1, 9) AS g
    """,
    """
    INSERT INTO group_memberships (market_group_id, window_start, window_end, source, meter_id,
                                   first_day, last_day, seq)
    SELECT md5('other-group-' || (1 + i %% 9))::uuid, '2024-10-01T07:00:00Z',
           '2024-11-01T07:00:00Z', 'webhook', md5(i::text)::uuid, '2024-10-01', '2024-10-31', 3
    FROM generate_series(100001, %(n)s) AS i
    """,
]


def meter_id(i: int) -> uuid.UUID:
    """Meter i's id, as the SQL above makes it: random-looking, like Leap's UUIDs, so the
    table's physical order is not meter_id order."""
    return uuid.UUID(hashlib.md5(str(i).encode()).hexdigest())  # noqa: S324 - not security


def timed(client: httpx.Client, url: str, **params: str | int) -> float:
    started = time.perf_counter()
    response = client.get(url, params=params or None)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return elapsed


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"  {name:<28} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({len(samples)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--fresh", action="store_true", help="never ANALYZE: tables as a new install has them"
    )
    parser.add_argument(
        "--all-grouped", action="store_true", help="every other meter in one of 9 more groups"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    with fresh_database("bench_lookups") as url:
        started = time.perf_counter()
        with psycopg.connect(url.replace("+asyncpg", ""), autocommit=True) as conn:
            params = {"n": args.meters, "group": GROUP, "unknown_group": UNKNOWN_GROUP}
            for statement in LOAD + (ALL_GROUPED if args.all_grouped else []):
                conn.execute(statement, params)
        confirm_membership_copies(url)
        with psycopg.connect(url.replace("+asyncpg", ""), autocommit=True) as conn:
            if not args.fresh:
                conn.execute(ANALYZE)
            conn.execute(CHECKPOINT)
        load_s = time.perf_counter() - started
        with serve(url) as service:
            client = httpx.Client(
                base_url=service.url, headers={"Authorization": f"Bearer {OPS_KEY}"}, timeout=30
            )
            ids = [rng.randint(1, args.meters) for _ in range(args.requests)]
            for i in ids[:200]:  # warm-up
                timed(client, f"/v1/meters/{meter_id(i)}")
            by_id = [timed(client, f"/v1/meters/{meter_id(i)}") for i in ids]
            by_ref = [timed(client, f"/v1/partner-references/site-{i}") for i in ids]
            listing = [
                timed(
                    client,
                    "/v1/meters",
                    transmission_region=rng.choice(REGIONS),
                    enrollment_status="ACTIVE",
                    limit=100,
                )
                for _ in range(min(args.requests, 500))
            ]
            group_on_day = [
                timed(
                    client,
                    f"/v1/meters/{meter_id(i)}/participation",
                    **{"from": "2024-10-15", "to": "2024-10-15"},
                )
                for i in ids
            ]
            roster = [
                timed(client, f"/v1/groups/{GROUP}/meters", trade_date="2024-10-15", limit=100_000)
                for _ in range(5)
            ]
            unknown_roster = [
                timed(
                    client,
                    f"/v1/groups/{UNKNOWN_GROUP}/meters",
                    trade_date="2024-10-15",
                    limit=100_000,
                )
                for _ in range(5)
            ]
    state = "fresh tables, never analyzed" if args.fresh else "analyzed"
    state += ", every meter in a group" if args.all_grouped else ""
    print(f"{today()} | {machine()} | {args.meters} meters loaded in {load_s:.0f} s ({state})")
    print(summary("meter by id", by_id))
    print(summary("partner by reference", by_ref))
    print(summary("filtered /v1/meters page", listing))
    print(summary("group of a meter on a date", group_on_day))
    for name, samples in (
        ("roster of 100k (one page)", roster),
        ("roster, 100k unknown", unknown_roster),
    ):
        print(
            f"  {name:<28} median {statistics.median(samples) * 1000:7.0f} ms"
            f"   max {max(samples) * 1000:7.0f} ms"
        )


if __name__ == "__main__":
    main()

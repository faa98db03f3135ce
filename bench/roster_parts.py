"""Where a 100k roster's time goes, stage by stage, on bench.lookups' data (1M meters).

Run: .venv/bin/python -m bench.roster_parts [--meters 1000000] [--runs 7] [--vacuum]

Loads the same data as bench.lookups (meters, a 100k group of known meters, a 100k group
of meters no row knows yet; ANALYZE, no VACUUM), then times, median of `--runs`:

- SQL stages, each over the group on 2024-10-15 with the service's settings (jit off,
  work_mem 64MB): the windows covering the day; + the winning window per meter (the
  anti-join); + each member's reference and archived flag (the `members` CTE); the roster
  statement itself, JSON included. First with the rows unconfirmed (as right after a
  membership write: each member's meter row is read and its window checked against the
  meter's others), then after the worker's confirm round (app/groups/copies.py: the
  rows' copies and `unbeaten` flags are read);
- queries.roster in-process (asyncpg through SQLAlchemy, as the endpoint calls it);
- the GET over HTTP with httpx (bench.lookups' client) and with http.client, and what
  json.loads of the body would add for a client that parses it.

`--vacuum` runs VACUUM ANALYZE after the load instead of ANALYZE: the visibility map is
then set, as autovacuum would leave the tables (this machine's server runs with
autovacuum off, so without it every index-only probe also reads the heap row).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import psycopg

from app.db import create_engine, session_factory
from app.groups import queries
from app.groups.repository import _ROSTER, _decides, roster_cte
from bench.common import OPS_KEY, confirm_membership_copies, fresh_database, machine, serve, today
from bench.lookups import GROUP, LOAD, UNKNOWN_GROUP

DAY = date(2024, 10, 15)
GROUPS = {"known": GROUP, "unknown": UNKNOWN_GROUP}
_DAY = "CAST(:day AS date)"
_IN_GROUP = "c.market_group_id = :group_id"

STAGES = {
    "windows covering the day": f"""SELECT count(*) FROM group_memberships c
        WHERE {_IN_GROUP} AND c.first_day <= {_DAY} AND c.last_day >= {_DAY}""",
    "+ winning window (anti-join)": f"""SELECT count(*) FROM group_memberships c
        WHERE {_IN_GROUP} AND {_decides(_DAY)}""",
    "+ reference, archived flag": f"""WITH {roster_cte()}
        SELECT count(*), max(partner_reference) FROM members""",
    "roster statement (JSON built)": str(_ROSTER),
}


def median_ms(run: Callable[[], Any], runs: int) -> str:
    run()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return f"median {statistics.median(samples) * 1000:6.0f} ms  min {min(samples) * 1000:6.0f}"


def sql_stages(conninfo: str, statements: dict[str, str], runs: int) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET jit = off")
        conn.execute("SET work_mem = '64MB'")
        for label, sql in statements.items():
            query = re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)  # :name -> psycopg's %(name)s
            for kind, group in GROUPS.items():
                params = {"group_id": group, "day": DAY, "after": uuid.UUID(int=0)}
                params["limit"] = 100_000

                def once(query: str = query, params: dict[str, Any] = params) -> object:
                    return conn.execute(query, params).fetchall()

                timing = median_ms(once, runs)
                print(f"  {label:<32} {kind:<8} {timing}")


async def in_process(url: str, runs: int) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    for kind, group in GROUPS.items():
        samples = []
        for _ in range(runs + 1):
            async with sessions() as session:
                started = time.perf_counter()
                await queries.roster(session, uuid.UUID(group), DAY, None, 100_000)
                samples.append(time.perf_counter() - started)
                await session.rollback()
        ms = statistics.median(samples[1:]) * 1000
        print(f"  {'queries.roster in-process':<32} {kind:<8} median {ms:6.0f} ms")
    await engine.dispose()


def over_http(url: str, runs: int) -> None:
    headers = {"Authorization": f"Bearer {OPS_KEY}"}
    with serve(url) as service, httpx.Client(base_url=service.url, headers=headers) as client:
        port = int(service.url.rsplit(":", 1)[1])
        for kind, group in GROUPS.items():
            path = f"/v1/groups/{group}/meters?trade_date={DAY}&limit=100000"

            def bare(path: str = path) -> bytes:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", path, headers=headers)
                body = conn.getresponse().read()
                conn.close()
                return body

            def get(path: str = path) -> httpx.Response:
                return client.get(path, timeout=30)

            print(f"  {'GET, httpx':<32} {kind:<8} {median_ms(get, runs)}")
            print(f"  {'GET, http.client':<32} {kind:<8} {median_ms(bare, runs)}")
            body = bare()
            parse = median_ms(lambda: json.loads(body), runs)  # noqa: B023 - called here
            print(f"  {'json.loads of the body':<32} {kind:<8} {parse}  ({len(body)} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM ANALYZE after loading")
    args = parser.parse_args()
    with fresh_database("bench_roster_parts") as url:
        conninfo = url.replace("+asyncpg", "")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            params = {"n": args.meters, "group": GROUP, "unknown_group": UNKNOWN_GROUP}
            for statement in [*LOAD, "VACUUM ANALYZE" if args.vacuum else "ANALYZE"]:
                conn.execute(statement, params)
        state = "VACUUM ANALYZE" if args.vacuum else "ANALYZE only"
        print(f"{today()} | {machine()} | {args.meters} meters ({state}), 100k roster on {DAY}")
        print(" unconfirmed rows (each member's meter row read):")
        sql_stages(conninfo, STAGES, args.runs)
        confirm_membership_copies(url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE group_memberships" if args.vacuum else "ANALYZE")
        print(" confirmed rows (their copies read):")
        sql_stages(conninfo, STAGES, args.runs)
        asyncio.run(in_process(url, args.runs))
        over_http(url, args.runs)


if __name__ == "__main__":
    main()

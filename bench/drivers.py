"""asyncpg vs psycopg 3 on the ingest path: the receiver's one store-and-apply statement.

Run: .venv/bin/python -m bench.drivers [--events 20000] [--concurrency 32]

Both drivers run the same SQL (the meter-event statement of app/webhooks/repository.py,
compiled once per driver's parameter style) from 32 concurrent tasks over 16
connections. The figure that matters on a 2-core machine is the client CPU per event:
the receiver is CPU-bound in Python, so the driver's share decides throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect

from app.db import RawStatement
from app.meters.repository import MeterFacts
from app.webhooks.repository import _STORE_METER_EVENTS, MeterEventBatch
from bench.common import fresh_database, machine, today

POOL = 16


def params(i: int) -> dict[str, Any]:
    facts = MeterFacts(
        meter_id=uuid.UUID(int=i % 20_000 + 1),
        transmission_region="CAISO",
        partner_reference=f"site-{i % 20_000}",
        enrollment_status="ACTIVE",
    )
    values = facts.params(uuid.uuid4(), refresh=False)
    body = json.dumps({"webhook_event_id": str(values["event_id"])}).encode()
    values.update(event_type="meter.enrollment.global-status.updated", body=body, sha=b"x" * 32)
    values["size"] = len(body)
    return MeterEventBatch.params([values])  # the receiver's statement with one event


async def drive(
    name: str, execute: Callable[[int], Awaitable[None]], events: int, concurrency: int
) -> dict[str, float]:
    counter = iter(range(events))

    async def task() -> None:
        for i in counter:
            await execute(i)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"events_per_s": events / wall, "client_cpu_us_per_event": cpu / events * 1e6}


async def with_asyncpg(url: str, events: int, concurrency: int) -> dict[str, float]:
    statement = RawStatement.compile(_STORE_METER_EVENTS)
    pool = await asyncpg.create_pool(url, min_size=POOL, max_size=POOL)

    async def execute(i: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetchval(statement.sql, *statement.args(params(i)))

    try:
        return await drive("asyncpg", execute, events, concurrency)
    finally:
        await pool.close()


async def with_psycopg(url: str, events: int, concurrency: int) -> dict[str, float]:
    compiled = _STORE_METER_EVENTS.compile(dialect=psycopg_dialect.dialect())  # type: ignore[no-untyped-call]
    sql = str(compiled)
    free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(POOL):
        free.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))

    async def execute(i: int) -> None:
        conn = await free.get()
        try:
            cursor = await conn.execute(sql, params(i))
            await cursor.fetchone()
        finally:
            free.put_nowait(conn)

    try:
        return await drive("psycopg", execute, events, concurrency)
    finally:
        while not free.empty():
            await free.get_nowait().close()


BULK_IDS = 100_000
BULK_ROUNDS = 10


async def bulk_asyncpg(url: str) -> float:
    """Seconds to send a 100k-uuid array parameter (the group.updated path), per round."""
    ids = [uuid.uuid4() for _ in range(BULK_IDS)]
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        for _ in range(BULK_ROUNDS):
            await conn.fetchval("SELECT count(*) FROM unnest($1::uuid[])", ids)
        return (time.perf_counter() - started) / BULK_ROUNDS
    finally:
        await conn.close()


async def bulk_psycopg(url: str) -> float:
    ids = [uuid.uuid4() for _ in range(BULK_IDS)]
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        started = time.perf_counter()
        for _ in range(BULK_ROUNDS):
            cursor = await conn.execute(
                "SELECT count(*) FROM unnest(%s::uuid[])", (ids,), binary=True
            )
            await cursor.fetchone()
        return (time.perf_counter() - started) / BULK_ROUNDS
    finally:
        await conn.close()


def run_all(events: int, concurrency: int) -> None:
    print(f"{today()} | {machine()} | {events} events, {concurrency} tasks, {POOL} connections")
    drivers = (("asyncpg", with_asyncpg, bulk_asyncpg), ("psycopg", with_psycopg, bulk_psycopg))
    for name, runner, bulk in drivers:
        with fresh_database(f"bench_driver_{name}") as url:
            plain = url.replace("postgresql+asyncpg://", "postgresql://")
            result = asyncio.run(runner(plain, events, concurrency))
            bulk_s = asyncio.run(bulk(plain))
        print(
            f"  {name:<8} {result['events_per_s']:8.0f} events/s   "
            f"{result['client_cpu_us_per_event']:6.0f} us client CPU per event   "
            f"100k-uuid array {bulk_s * 1000:5.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    run_all(args.events, args.concurrency)


if __name__ == "__main__":
    main()

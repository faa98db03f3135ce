"""The change feed's costs: ingest with and without it, side by side, and how soon a
waiting reader hears of a commit.

Run: .venv/bin/python -m bench.changes [--rounds 2] [--duration 15] [--changes 300]

- ingest: bench.ingest's load (wrk, 32 connections) against meter-sync with the feed
  recorded, and with recording off (METER_SYNC_BENCH_FEED_OFF=1, a switch for this bench
  only), interleaved round by round so both see the same machine;
- wake-up: READERS clients long-poll GET /v1/changes (wait=30) on one meter-sync while a
  writer commits one change at a time; the figure is from the writer sending COMMIT to
  each reader holding its answer (p50, p99, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

import asyncpg
import httpx

from bench import ingest
from bench.common import OPS_KEY, fresh_database, machine, serve, today

READERS = 4


def ingest_side_by_side(rounds: int, duration: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"feed on": [], "feed off": []}
    p99s: dict[str, list[float]] = {"feed on": [], "feed off": []}
    for n in range(rounds):
        order = ["feed off", "feed on"] if n % 2 == 0 else ["feed on", "feed off"]
        for name in order:
            env = {"METER_SYNC_BENCH_FEED_OFF": "1"} if name == "feed off" else {}
            result = ingest.run(duration, 32, 1, 1, env=env)
            if result["non_2xx"] or result["not_applied"]:
                raise RuntimeError(f"ingest failures: {result}")
            rates[name].append(float(result["events_per_s"]))  # type: ignore[arg-type]
            p99s[name].append(float(result["p99_ms"]))  # type: ignore[arg-type]
            print(f"  round {n + 1} {name}: {result['events_per_s']}/s, p99 {result['p99_ms']} ms")
    return {
        **{f"{k} events/s": v for k, v in rates.items()},
        **{f"{k} p99 ms": v for k, v in p99s.items()},
    }


async def _reader(
    client: httpx.AsyncClient, answers: dict[int, list[float]], stop: asyncio.Event
) -> None:
    cursor: str | None = None
    while not stop.is_set():
        params: dict[str, Any] = {"wait": 30, "limit": 1000}
        if cursor is not None:
            params["after"] = cursor
        response = await client.get("/v1/changes", params=params)
        now = time.perf_counter()
        body = response.json()
        for change in body["items"]:
            answers.setdefault(change["summary"]["n"], []).append(now)
        cursor = body["next_cursor"]


async def wakeup(url: str, service_url: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {OPS_KEY}"}
    answers: dict[int, list[float]] = {}
    sent: dict[int, float] = {}
    stop = asyncio.Event()
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    async with httpx.AsyncClient(base_url=service_url, headers=headers, timeout=60) as client:
        readers = [asyncio.ensure_future(_reader(client, answers, stop)) for _ in range(READERS)]
        await asyncio.sleep(1)
        for n in range(count):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO changes (type, summary) VALUES ('meter.upserted', $1::jsonb)",
                    json.dumps({"n": n}),
                )
                sent[n] = time.perf_counter()  # COMMIT is sent as the block exits
            await asyncio.sleep(random.uniform(0.01, 0.05))
        deadline = time.monotonic() + 30
        while sum(len(v) for v in answers.values()) < count * READERS:
            if time.monotonic() > deadline:
                raise RuntimeError("readers did not get every change")
            await asyncio.sleep(0.1)
        stop.set()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    await conn.close()
    return [(t - sent[n]) * 1000 for n, times in answers.items() for t in times]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    print(f"{today()} | {machine()}")
    if not args.skip_ingest:
        figures = ingest_side_by_side(args.rounds, args.duration)
        for name, values in figures.items():
            print(f"  {name:<22} median {statistics.median(values):8.1f}   {values}")
    with fresh_database("bench_changes") as url, serve(url) as service:
        latencies = asyncio.run(wakeup(url, service.url, args.changes))
    print(
        f"  wake-up, commit -> answer, {READERS} readers x {args.changes} changes: "
        f"p50 {_quantile(latencies, 0.5):.1f} ms, p99 {_quantile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )


if __name__ == "__main__":
    main()

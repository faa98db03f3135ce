"""A full reconciliation of N meters from the fake Leap (its own process), against
walking the same pages without storing them.

Run: .venv/bin/python -m bench.sync_full [--meters 100000]

Reports meters/s of `meter-sync sync --full` (run as a child process against a fresh
database), its peak RSS, and the time to fetch the same pages with the same client but
no writes. Goals: full run <= 1.5 x fetch-only, peak RSS < 250 MB and flat in N.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time

import httpx

from app.leap.client import LeapClient
from app.leap.models import MeterFilter
from bench.common import ROOT, free_port, fresh_database, machine, today

SIM_KEY = "sim-key"


async def fetch_only(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    seen = 0
    async with LeapClient(url, SIM_KEY) as client:
        async for page in client.iter_meter_pages(MeterFilter(page_size=500)):
            seen += len(page.meters)
        async for enrollments in client.iter_enrollment_pages(MeterFilter(page_size=500)):
            seen += len(enrollments.meters)
    return time.perf_counter() - started, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "leap-sim",
            "--port",
            str(port),
            "--meters",
            str(args.meters),
            "--groups",
            "200",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sim_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(
                    f"{sim_url}/v1.1/webhooks", headers={"Authorization": f"Bearer {SIM_KEY}"}
                )
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        fetch_s, fetched = asyncio.run(fetch_only(sim_url))
        with fresh_database("bench_sync") as url:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "LEAP_API_KEY": SIM_KEY,
                "LEAP_API_BASE_URL": sim_url,
                "LEAP_WEBHOOK_SECRETS": "bench-webhook-secret",
                "API_KEYS": "ops:bench-ops-key-0123456",
                "LOG_LEVEL": "WARNING",
            }
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "app.cli", "sync", "--full"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            full_s = time.perf_counter() - started
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    print(f"{today()} | {machine()} | {args.meters} meters from leap-sim in its own process")
    print(f"  fetch only    {fetch_s:7.1f} s   ({fetched} records, both searches)")
    print(
        f"  full run      {full_s:7.1f} s   {args.meters / full_s:7.0f} meters/s"
        f"   ratio {full_s / fetch_s:.2f} x fetch-only"
    )
    print(f"  peak RSS of the sync process {peak_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()

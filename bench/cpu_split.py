"""CPU per event, split by process, for the ceiling and meter-sync back to back.

Run: .venv/bin/python -m bench.cpu_split [--rounds 2] [--duration 10] [--server uvicorn ...]

On 2 shared cores the ingest rate is bounded by the CPU each event costs in the HTTP
server, the PostgreSQL backends serving it, and wrk. This loads
each server with bench.ingest's wrk script and reads, from /proc, the CPU spent during
the measured window by the server (and its children), by the PostgreSQL backends
connected to its database (pg_stat_activity); divided by the requests wrk completed, in
microseconds per event. (wrk's own cost per request is the same for every server.)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import psycopg

from bench.attacks import cpu_seconds
from bench.common import SECRET, SERVER, fresh_database, launch, machine, today
from bench.ingest import WRK_SCRIPT
from bench.servers import CANDIDATES, command


def _backends(database: str) -> list[int]:
    with psycopg.connect(f"{SERVER}/postgres") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [row[0] for row in rows]


def split(candidate: str, app: str, duration: int, connections: int) -> dict[str, float]:
    with (
        fresh_database(f"bench_cpu_{app}") as url,
        launch(lambda port: command(candidate, port, app), url) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        database = url.rsplit("/", 1)[1]
        script = Path(tmp) / "ingest.lua"
        script.write_text(WRK_SCRIPT.replace("__SECRET__", SECRET))
        subprocess.run(
            ["wrk", "-t1", "-c8", "-d3s", "-s", str(script), server.url],
            check=True,
            capture_output=True,
        )
        wrk = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script)]
        load = subprocess.Popen([*wrk, server.url], stdout=subprocess.PIPE, text=True)
        # The pools are warm after the warm-up: these backends serve the measured window.
        backends = _backends(database)
        before = (cpu_seconds(server.process.pid), sum(cpu_seconds(p) for p in backends))
        out, _ = load.communicate()
        after_server = cpu_seconds(server.process.pid)
        after_pg = sum(cpu_seconds(p) for p in backends)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "events_per_s": requests / duration,
        "server_us": 1e6 * (after_server - before[0]) / requests,
        "postgres_us": 1e6 * (after_pg - before[1]) / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server", nargs="+", choices=CANDIDATES, default=["uvicorn"])
    args = parser.parse_args()
    print(f"{today()} | {machine()} | {args.connections} connections, {args.duration} s")
    for round_no in range(1, args.rounds + 1):
        for name in args.server:
            for label, candidate, app in (
                ("ceiling", "uvicorn", "ceiling"),
                (name, name, "service"),
            ):
                r = split(candidate, app, args.duration, args.connections)
                print(
                    f"round {round_no} {label:<14} {r['events_per_s']:6.0f} ev/s | CPU per event:"
                    f" server {r['server_us']:5.0f} µs, postgres {r['postgres_us']:5.0f} µs",
                    flush=True,
                )


if __name__ == "__main__":
    main()

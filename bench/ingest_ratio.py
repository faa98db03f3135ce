"""Ingest as a fraction of the ceiling: bench.ceiling and meter-sync, back to back, N rounds.

Run: .venv/bin/python -m bench.ingest_ratio [--rounds 3] [--duration 15] [--connections 32]
                                            [--server uvicorn granian ...]

Each round loads, for each server candidate, the minimal receiver (bench.ceiling,
uvicorn + asyncpg) and right after it that candidate serving meter-sync (`uvicorn` is
`meter-sync serve --no-worker`, default settings) with the same wrk script (bench.ingest),
every server on a fresh database. The machine is shared and noisy, so the figure to quote
is the ratio within a pair, not the events/s across rounds.
Needs `wrk` and the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from typing import Any

from bench.common import fresh_database, launch, machine, today
from bench.ingest import wrk_load
from bench.servers import CANDIDATES, command


def measure(candidate: str, app: str, duration: int, connections: int) -> dict[str, Any]:
    with (
        fresh_database(f"bench_ratio_{app}") as url,
        launch(lambda port: command(candidate, port, app), url) as server,
    ):
        return wrk_load(server.url, duration, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server", nargs="+", choices=CANDIDATES, default=["uvicorn"])
    parser.add_argument(
        "--ceiling-server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="server of the ceiling (the issue's reference is uvicorn)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install -y wrk")
    print(
        f"{today()} | {machine()} | 1 process, {args.connections} connections, {args.duration} s"
        f" | ceiling on {args.ceiling_server}"
    )
    ratios: dict[str, list[float]] = {name: [] for name in args.server}
    for round_no in range(1, args.rounds + 1):
        for name in args.server:
            # Each candidate right after its own ceiling run: the pair shares the noise.
            ceiling = measure(args.ceiling_server, "ceiling", args.duration, args.connections)
            result = measure(name, "service", args.duration, args.connections)
            ratio = result["events_per_s"] / ceiling["events_per_s"]
            ratios[name].append(ratio)
            print(
                f"round {round_no} {name:<14} {result['events_per_s']:6.0f} ev/s"
                f"  p99 {result['p99_ms']:5.1f} ms | ceiling {ceiling['events_per_s']:6.0f} ev/s"
                f"  p99 {ceiling['p99_ms']:5.1f} ms | ratio {ratio:.2f}"
                f" | non-2xx {result['non_2xx']}, socket errors {result['socket_errors']}",
                flush=True,
            )
    for name, values in ratios.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: ratio median {statistics.median(values):.2f} ({each})")


if __name__ == "__main__":
    main()

"""Where the receiver's CPU goes under the ingest load: py-spy on `meter-sync serve`.

Run: .venv/bin/python -m bench.profile_ingest [--duration 15] [--svg /tmp/ingest.svg]

Serves meter-sync (`serve --no-worker`, default settings) on a fresh database, loads it
with bench.ingest's wrk script (32 connections) and samples the server with py-spy
(`pip install py-spy`; needs ptrace rights, e.g. root). Prints the top frames by own
time and by inclusive time, as shares of the sampled (non-idle) CPU, and a breakdown by
layer. With --svg, also writes a flame graph from a second, separate sampling.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import SECRET, fresh_database, launch, machine, today
from bench.ingest import WRK_SCRIPT
from bench.servers import CANDIDATES, command

# Layers, by the file a frame comes from (first match wins), to read the profile at a glance.
LAYERS = (
    ("app: receiver endpoint", r"app/webhooks/endpoints\.py"),
    ("app: parsing (json + checks)", r"app/webhooks/parsing\.py|json/"),
    ("app: envelope/schema (pydantic)", r"app/webhooks/schemas\.py|pydantic"),
    ("app: service + repository", r"app/webhooks/(service|repository)\.py|app/meters/"),
    ("app: metrics", r"app/metrics\.py|prometheus_client"),
    ("app: logging / request id", r"app/logs\.py|logging/"),
    ("asyncpg", r"asyncpg"),
    ("starlette / fastapi", r"starlette|fastapi"),
    ("uvicorn / httptools", r"uvicorn|httptools"),
    ("asyncio / uvloop", r"asyncio/|uvloop"),
)


def _frame_key(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; keep function + file.
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    return f"{function} ({'/'.join(Path(path).parts[-2:])})"


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv by pip
    return str(beside) if beside.exists() else "py-spy"


def summarize(raw: str, top: int = 12) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        total += count
        keys = [_frame_key(f) for f in frames]
        own[keys[-1]] += count
        for key in set(keys):
            inclusive[key] += count
        leaf = frames[-1]
        layer = next((name for name, pattern in LAYERS if re.search(pattern, leaf)), "other")
        layers[layer] += count
    lines = [f"{total} samples (non-idle)", "", "own time (leaf frame):"]
    lines += [f"  {100 * n / total:5.1f}%  {key}" for key, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {key}" for key, n in inclusive.most_common(top * 3)]
    lines += ["", "own time by layer:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in layers.most_common()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--svg", type=Path)
    parser.add_argument("--native", action="store_true", help="include C frames (slower)")
    parser.add_argument(
        "--app", choices=("service", "ceiling"), default="service", help="ceiling: bench.ceiling"
    )
    parser.add_argument("--server", choices=CANDIDATES, default="uvicorn")
    args = parser.parse_args()
    print(f"{today()} | {machine()} | {args.app} on {args.server}, {args.connections} connections")
    with (
        fresh_database("bench_profile") as url,
        launch(lambda port: command(args.server, port, args.app), url) as service,
        tempfile.TemporaryDirectory() as tmp,
    ):
        script = Path(tmp) / "ingest.lua"
        script.write_text(WRK_SCRIPT.replace("__SECRET__", SECRET))
        runs = 2 if args.svg else 1
        load = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration * runs + 5}s",
                "-s",
                str(script),
                service.url,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)  # warm-up
        raw = Path(tmp) / "profile.txt"
        spy = [_py_spy(), "record", "--pid", str(service.process.pid), "--rate", str(args.rate)]
        spy += ["--native"] if args.native else []
        subprocess.run(
            [*spy, "--duration", str(args.duration), "--format", "raw", "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        if args.svg:
            subprocess.run(
                [*spy, "--duration", str(args.duration), "-o", str(args.svg)],
                check=True,
                capture_output=True,
            )
        out, _ = load.communicate()
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        print(f"load during sampling: {rate.group(1) if rate else '?'} events/s (with py-spy)")
        print(summarize(raw.read_text()))


if __name__ == "__main__":
    main()

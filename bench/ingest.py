"""Webhook ingest throughput and latency: wrk (another process) against one meter-sync.

Run: .venv/bin/python -m bench.ingest [--duration 20] [--connections 32]

Every request is a distinct event (a fresh webhook_event_id): 30% meter.created for new
meters, 70% state events for those meters, so each one stores a row and applies effects.
Needs `wrk` (Debian package) and the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from bench.common import SECRET, fresh_database, machine, serve, today

WRK_SCRIPT = r"""
local counter = 0
local regions = {"CAISO", "ERCOT", "NYISO", "PJM", "ISONE", "SERC", "WECC_SW", "WECC_PC"}
local statuses = {"ACTIVE", "ELIGIBLE", "INELIGIBLE", "PENDING", "NOT_PARTICIPATING"}

local function uuid()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

local function meter_id(n)
  return string.format("00000000-0000-4000-8000-%012d", n)
end

init = function(args)
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Webhook-Secret"] = "__SECRET__"
end

request = function()
  counter = counter + 1
  local n = math.random(1, 20000)
  local region = regions[(n % #regions) + 1]
  local payload
  if counter % 10 < 3 then
    payload = string.format(
      '{"webhook_event_type":"meter.created","meter_id":"%s","partner_reference":"site-%d",' ..
      '"transmission_region":"%s","meter_type":"UTILITY_METER"}', meter_id(n), n, region)
  else
    payload = string.format(
      '{"webhook_event_type":"meter.enrollment.global-status.updated","meter_id":"%s",' ..
      '"partner_reference":"site-%d","transmission_region":"%s","global_enrollment_status":"%s"}',
      meter_id(n), n, region, statuses[math.random(1, #statuses)])
  end
  local body = string.format('{"webhook_event_id":"%s","payload":%s}', uuid(), payload)
  return wrk.format(nil, "/webhooks/leap", nil, body)
end
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_load(url: str, duration: int, connections: int, threads: int = 1) -> dict[str, Any]:
    """Warm up (3 s, 8 connections), then load `url` with wrk; rate, latency, errors."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(WRK_SCRIPT.replace("__SECRET__", SECRET))
        subprocess.run(
            ["wrk", "-t1", "-c8", "-d3s", "-s", str(script), url],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "events_per_s": rate,
        "p50_ms": _ms(*p50.groups()) if p50 else None,
        "p99_ms": _ms(*p99.groups()) if p99 else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
        "raw": out,
    }


def run(
    duration: int,
    connections: int,
    threads: int,
    processes: int,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    with fresh_database("bench_ingest") as url:
        extra = ["--workers", str(processes)] if processes > 1 else []
        with serve(url, *extra, env=env) as service:
            result = wrk_load(service.url, duration, connections, threads)
        with psycopg.connect(url.replace("+asyncpg", "")) as conn:
            stored = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
            failed = conn.execute(
                "SELECT count(*) FROM webhook_events WHERE status <> 'applied'"
            ).fetchone()
    result["stored_events"] = stored[0] if stored else None
    result["not_applied"] = failed[0] if failed else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    result = run(args.duration, args.connections, args.threads, args.processes)
    print(result.pop("raw"))
    print(f"{today()} | {machine()} | {args.processes} process(es), {args.connections} connections")
    for key, value in result.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()

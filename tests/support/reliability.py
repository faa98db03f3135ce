"""Helpers for tests/ops/test_reliability.py: the fake Leap's event mix, processes, a TCP proxy.

Everything the tests drive goes over HTTP (the fake Leap's `/sim` control API runs on the
sim's own event loop, which also runs its sender); only plain counters of the sender are
read across threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.leap_sim.server import RunningSim, build_state, serve_in_thread
from tests.support.live import free_port
from tests.support.settings import ROOT, WEBHOOK_SECRET

JSON = dict[str, Any]
SIM_KEY = "sim-key"
REGIONS = ("CAISO", "ERCOT", "NYISO", "ISONE", "PJM", "SERC", "WECC_SW", "WECC_PC")
STATUSES = ("ACTIVE", "ELIGIBLE", "INELIGIBLE", "NOT_PARTICIPATING", "PENDING")
PARTNER_ACTIONS = ("IS_AUTHORIZED", "NO_MISSING_FIELDS", "DOCUMENTS_SIGNED", "ADDRESS")
LEAP_ACTIONS = ("IS_ASSIGNED_TO_A_RESOURCE", "HAS_NOMINATIONS", "HAS_MARKET_REGISTRATION")
CONNECT_STATUSES = ("CREATED", "UPDATED", "CLOSED", "COMPLETED")
AUTH_STATUSES = ("INITIATED", "COMPLETED", "FAILED")
UTILITIES = ("PG&E", "SCE", "Oncor", "ConEd", "Eversource", "PECO")

# Share of the emitted events per kind; group rosters are a handful, placed by `emit`.
MIX: dict[str, float] = {
    "created": 0.20,
    "status": 0.30,
    "participation": 0.15,
    "actions": 0.15,
    "connect": 0.10,
    "authorization": 0.10,
}


def start_sim(
    *,
    meters: int,
    groups: int,
    seed: int,
    receiver_url: str,
    time_factor: float,
    duplicate_probability: float,
    concurrency: int = 4,
) -> RunningSim:
    """The fake Leap on its own thread, subscribed with every event type to the receiver."""
    state = build_state(
        meters=meters,
        groups=groups,
        seed=seed,
        api_key=SIM_KEY,
        time_factor=time_factor,
        duplicate_probability=duplicate_probability,
        shuffle=True,
        receiver_url=receiver_url,
        receiver_headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )
    # Several first-try dispatchers (Leap delivers in parallel too); read once at start.
    state.sender.concurrency = concurrency
    return serve_in_thread(state)


class SimControl:
    """The fake Leap's `/sim` API."""

    def __init__(self, sim: RunningSim) -> None:
        self.sim = sim
        self.http = httpx.AsyncClient(
            base_url=sim.url,
            timeout=120,
            headers={"Authorization": f"Bearer {SIM_KEY}"},
            # well under uvicorn's 5 s keep-alive: never reuse a connection it is closing
            limits=httpx.Limits(keepalive_expiry=1.0),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = await self.http.request(method, path, json=body, params=params or None)
        response.raise_for_status()
        return response.json()

    async def drain(self, seconds: float) -> bool:
        # The sim answers after up to `seconds`: wait longer than that for its answer.
        response = await self.http.post(
            "/sim/drain", params={"seconds": seconds}, timeout=seconds + 30
        )
        response.raise_for_status()
        return bool(response.json()["drained"])

    def pending_deliveries(self) -> list[str]:
        """What the sender still holds, with each attempt's outcome (for failure messages)."""
        return [
            f"{d.event_id} {d.event_type}: "
            + "; ".join(
                f"#{a.number} {a.status_code or a.error} {a.response_time_ms}ms" for a in d.attempts
            )
            for d in self.sim.state.sender.deliveries.values()
            if d.outcome == "pending"
        ]

    async def deliveries(self) -> list[JSON]:
        return list((await self.call("GET", "/sim/deliveries"))["deliveries"])

    async def emitted(self) -> list[JSON]:
        return list((await self.call("GET", "/sim/events", limit=1_000_000))["events"])


class EventMix:
    """Emits a seeded, realistic mix of Leap events through the sim's control API."""

    def __init__(self, control: SimControl, seed: int, base_meters: int, groups: list[str]):
        self.control = control
        self.rng = random.Random(seed)
        portfolio = control.sim.state.portfolio
        self.meter_ids = [portfolio.meter_id(i) for i in range(base_meters)]
        self.refs = sorted(
            {
                c.partner_reference
                for i in range(min(base_meters, 2000))
                if (c := portfolio.core(i)) is not None and c.partner_reference is not None
            }
        )
        self.groups = groups
        self.emitted: Counter[str] = Counter()
        self.rosters = 0
        self._fresh_refs = 0

    def _some(self, count: int) -> list[str]:
        return self.rng.sample(self.meter_ids, min(count, len(self.meter_ids)))

    def _ref(self) -> str:
        if self.refs and self.rng.random() < 0.7:
            return self.rng.choice(self.refs)
        self._fresh_refs += 1
        return f"reliability-ref-{self._fresh_refs:05d}"

    def _day(self, spread: int = 60) -> datetime:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today + timedelta(days=self.rng.randint(-spread, spread))

    async def emit(self, budget: int, rosters: int = 0) -> int:
        """Emit exactly `budget` events (one per meter touched, one per connect event),
        `rosters` of them group rosters at random points."""
        points = sorted(self.rng.randrange(budget) for _ in range(min(rosters, budget)))
        left = budget
        kinds, weights = list(MIX), list(MIX.values())
        while left > 0:
            if points and (budget - left >= points[0] or left <= len(points)):
                points.pop(0)
                left -= await self._one("roster", 1)
                continue
            kind = self.rng.choices(kinds, weights)[0]
            size = min(left - len(points), self.rng.randint(1, 60))
            left -= await self._one(kind, size)
        return budget

    async def _one(self, kind: str, size: int) -> int:
        c, rng = self.control, self.rng
        if kind == "created":
            body: JSON = {"count": size, "transmission_region": rng.choice(REGIONS)}
            if rng.random() < 0.2:
                # a reference holding several meters
                body["partner_reference"] = self._ref()
            if rng.random() < 0.3:
                body["meter_type"] = rng.choice(("UTILITY_METER", "SUBMETER", "DEVICE"))
            ids = (await c.call("POST", "/sim/meters", body))["meter_ids"]
            self.meter_ids += ids
            sent = len(ids)
        elif kind == "status":
            body = {"meter_ids": self._some(size), "global_enrollment_status": rng.choice(STATUSES)}
            sent = len((await c.call("POST", "/sim/meters/status", body))["webhook_event_ids"])
        elif kind == "participation":
            start = self._day()
            body = {
                "meter_ids": self._some(size),
                "participation_preference": rng.choice(("PARTICIPATE", "IDLE", "DISENROLL")),
                "start_time": start.isoformat(),
            }
            if rng.random() < 0.5:
                body["end_time"] = (start + timedelta(days=rng.randint(1, 30))).isoformat()
                body["reason"] = "Customer vacation"
            path = "/sim/meters/participation"
            sent = len((await c.call("POST", path, body))["webhook_event_ids"])
        elif kind == "actions":
            partner = [] if rng.random() < 0.3 else rng.sample(PARTNER_ACTIONS, rng.randint(1, 2))
            body = {"meter_ids": self._some(size), "partner": partner}
            if rng.random() < 0.3:
                body["leap"] = rng.sample(LEAP_ACTIONS, rng.randint(0, 2))
            path = "/sim/meters/required-actions"
            sent = len((await c.call("POST", path, body))["webhook_event_ids"])
        elif kind in ("connect", "authorization"):
            calls = []
            for _ in range(size):
                if kind == "connect":
                    body = {
                        "partner_reference": self._ref(),
                        "status": rng.choice(CONNECT_STATUSES),
                    }
                    calls.append(c.call("POST", "/sim/connect-sessions", body))
                else:
                    body = {
                        "partner_reference": self._ref(),
                        "utility_name": rng.choice(UTILITIES),
                        "status": rng.choice(AUTH_STATUSES),
                    }
                    calls.append(c.call("POST", "/sim/authorizations", body))
            sent = sum(len(a["webhook_event_ids"]) for a in await asyncio.gather(*calls))
        else:
            # Every roster event gets its own window, so the final roster of each window
            # does not depend on arrival order (webhooks carry no timestamp).
            self.rosters += 1
            start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=self.rosters)
            body = {
                "start_date_time": start.isoformat(),
                "end_date_time": (start + timedelta(hours=23)).isoformat(),
                "meter_ids": self._some(rng.randint(20, 300)),
            }
            path = f"/sim/groups/{rng.choice(self.groups)}/roster"
            sent = len((await c.call("PUT", path, body))["webhook_event_ids"])
        self.emitted[kind] += sent
        return sent


class Proc:
    """A `meter-sync` subprocess that can be SIGKILLed and started again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "app.cli", *args]
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def service_env(database_url: str, sim_url: str, state_dir: Path, ops_key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEAP_", "API_KEYS", "DATABASE_URL", "SYNC_", "FULL_SYNC_"))
    }
    env.update(
        DATABASE_URL=database_url,
        LEAP_WEBHOOK_SECRETS=WEBHOOK_SECRET,
        API_KEYS=f"ops:{ops_key}",
        LEAP_API_KEY=SIM_KEY,
        LEAP_API_BASE_URL=sim_url,
        LOG_LEVEL="WARNING",
        STATE_DIR=str(state_dir),
    )
    return env


class TcpProxy:
    """A TCP relay to PostgreSQL that can be cut (connections closed, new ones refused)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def cut(self) -> None:
        """Stop listening (new connections are refused) and abort every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

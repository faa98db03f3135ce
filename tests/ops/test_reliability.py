"""Reliability: a crash soak and a database outage, end to end over real HTTP and PostgreSQL.

Both tests stream a seeded mix of Leap events from the fake Leap's sender (Leap's retry
schedule, time-scaled; duplicate deliveries; shuffled order) and then compare what
meter-sync stored with what the fake Leap emitted and holds as truth. Counts are printed
(see them with `-s`).

- `test_crash_soak`: `meter-sync serve --no-worker` and `meter-sync worker` run as
  subprocesses and are each SIGKILLed 5 times mid-delivery. The default suite runs 4,000
  events; the 20,000-event run is marked `soak` (`pytest -m soak`), same body.
- `test_database_outage_answers_503_then_nothing_lost`: PostgreSQL is reached through a
  TCP proxy that is cut for 30 s mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.leap_sim.server import RunningSim
from tests.support.db import rows
from tests.support.http import healthy
from tests.support.live import free_port
from tests.support.reliability import EventMix, Proc, SimControl, TcpProxy, service_env, start_sim
from tests.support.settings import OPS_KEY, WEBHOOK_SECRET
from tests.support.wait import wait_for

JSON = dict[str, Any]
SEED = 20240611
CONNECT_KINDS = {
    "connect_session.updated": "connect_session",
    "connect_session.authorization_updated": "authorization",
}
NON_METER_TYPES = {*CONNECT_KINDS, "meter.enrollment.group.updated"}

# Minutes each: in the default run, skipped while editing with `-m "not slow"`.
pytestmark = pytest.mark.slow


class Clock:
    """Phase durations, printed at the end."""

    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()
        self.phases: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.phases.append((name, now - self.last))
        self.last = now

    def report(self) -> str:
        parts = ", ".join(f"{n} {s:.1f}s" for n, s in self.phases)
        return f"{parts}; total {time.monotonic() - self.t0:.1f}s"


def _stop_sim(sim: RunningSim | None) -> None:
    if sim is not None:
        sim.stop()


# ---- what the fake Leap did, what meter-sync stored ---------------------------------------


def attempt_statuses(deliveries: list[JSON]) -> Counter[str]:
    return Counter(
        str(a["status_code"]) if a["status_code"] is not None else "no answer"
        for d in deliveries
        for a in d["attempts"]
    )


async def check_exactly_once(
    engine: AsyncEngine, emitted: list[JSON], deliveries: list[JSON]
) -> tuple[JSON, list[str]]:
    """Every emitted event stored once and applied once: (counts, problems found)."""
    problems: list[str] = []

    def expect(ok: bool, problem: str) -> None:
        if not ok:
            problems.append(problem)

    found = await rows(engine, "SELECT webhook_event_id::text, status FROM webhook_events")
    ((count, distinct, dup_counted),) = await rows(
        engine,
        "SELECT count(*), count(DISTINCT webhook_event_id), "
        "coalesce(sum(duplicate_deliveries), 0) FROM webhook_events",
    )
    stored = {r[0]: r[1] for r in found}
    expect(count == distinct == len(stored), f"an id is stored twice: {count} rows, {distinct} ids")
    emitted_ids = {str(e["webhook_event_id"]) for e in emitted}
    delivered = {d["webhook_event_id"] for d in deliveries if d["outcome"] == "delivered"}
    dropped = [d["webhook_event_id"] for d in deliveries if d["outcome"] == "dropped"]
    expect(len(emitted_ids) == len(emitted), "the fake Leap emitted an id twice")
    lost = delivered - stored.keys()
    expect(not lost, f"{len(lost)} events answered 2xx are not stored, e.g. {sorted(lost)[:3]}")
    missing = emitted_ids - stored.keys()
    expect(not missing, f"{len(missing)} emitted events not stored ({len(dropped)} dropped)")
    expect(not (stored.keys() - emitted_ids), "stored an id the fake Leap never sent")
    statuses = Counter(stored.values())
    if statuses != Counter({"applied": len(stored)}):
        errors = await rows(
            engine,
            "SELECT status, event_type, left(error, 160), count(*) FROM webhook_events "
            "WHERE status <> 'applied' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5",
        )
        problems.append(f"not every stored event is applied: {dict(statuses)}; e.g. {errors}")
    # An id is newly stored (202) by at most one delivery; every other 2xx is a 200.
    accepted_twice = [
        d["webhook_event_id"]
        for d in deliveries
        if sum(a["status_code"] == 202 for a in d["attempts"]) > 1
    ]
    expect(
        not accepted_twice,
        f"{len(accepted_twice)} ids answered 202 more than once, e.g. "
        f"{[(i, stored.get(i)) for i in accepted_twice[:3]]}",
    )
    answered_200 = sum(a["status_code"] == 200 for d in deliveries for a in d["attempts"])
    # each 200 was counted on the stored row before it was answered
    expect(dup_counted >= answered_200, f"{answered_200} answers 200, {dup_counted} counted")

    # Effects: one history row per connect-session / authorization event, none twice.
    by_type = Counter(str(e["payload"]["webhook_event_type"]) for e in emitted)
    history = dict(await rows(engine, "SELECT kind, count(*) FROM partner_events GROUP BY kind"))
    for event_type, kind in CONNECT_KINDS.items():
        expect(
            history.get(kind, 0) == by_type[event_type],
            f"{history.get(kind, 0)} {kind} history rows for {by_type[event_type]} events",
        )
    repeated = await rows(
        engine,
        "SELECT webhook_event_id::text, kind FROM partner_events "
        "WHERE webhook_event_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1",
    )
    expect(not repeated, f"history repeated for {len(repeated)} events, e.g. {repeated[:3]}")
    # Meters: each linked to its reference once, never moved (references never change here).
    relinked = await rows(
        engine,
        "SELECT meter_id::text, array_agg(coalesce(webhook_event_id::text, 'by the API') "
        "ORDER BY id) FROM partner_events WHERE kind = 'meter_linked' "
        "GROUP BY meter_id HAVING count(*) > 1",
    )
    expect(not relinked, f"{len(relinked)} meters linked more than once, e.g. {relinked[:3]}")
    expect(history.get("meter_unlinked", 0) == 0, f"{history.get('meter_unlinked')} unlinks")
    ((unlogged,),) = await rows(
        engine,
        "SELECT count(*) FROM meters m WHERE m.partner_reference IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM partner_events p WHERE p.kind = 'meter_linked' AND p.meter_id = m.meter_id"
        " AND p.partner_reference = m.partner_reference)",
    )
    expect(unlogged == 0, f"{unlogged} meters' links missing from their partner's history")
    ((twice,),) = await rows(
        engine,
        "SELECT count(*) FROM meters m WHERE jsonb_array_length(m.participation_preferences) <> "
        "(SELECT count(DISTINCT p->>'start_time') "
        "FROM jsonb_array_elements(m.participation_preferences) p)",
    )
    expect(twice == 0, f"{twice} meters keep a participation window twice")
    meter_ids = {
        str(e["payload"]["meter_id"])
        for e in emitted
        if e["payload"]["webhook_event_type"] not in NON_METER_TYPES
    }
    present = {r[0] for r in await rows(engine, "SELECT meter_id::text FROM meters")}
    expect(not (meter_ids - present), f"{len(meter_ids - present)} events' meters are missing")
    counts = {
        "emitted": len(emitted_ids),
        "stored": count,
        "delivered (2xx)": len(delivered),
        "dropped": len(dropped),
        "answered 200": answered_200,
        "duplicates counted": dup_counted,
        "connect_session rows": history.get("connect_session", 0),
        "authorization rows": history.get("authorization", 0),
        "meter_linked rows": history.get("meter_linked", 0),
    }
    return counts, problems


async def check_rosters(engine: AsyncEngine, sim: RunningSim) -> tuple[int, list[str]]:
    """Each group holds exactly the one window and members of the group.updated it names as
    its latest word from Leap, and that event is one the fake Leap sent for the group.

    Leap promises no order, so which of a group's events arrives last is not known in
    advance: the group records the one it applied last (`source_event_id`), and its
    memberships must be exactly that event's, whatever came before.
    """
    found: dict[str, set[str]] = defaultdict(set)
    for group, start, end, meter in await rows(
        engine,
        "SELECT market_group_id::text, window_start, window_end, meter_id::text "
        "FROM group_memberships WHERE source = 'webhook'",
    ):
        found[group].add(f"{_iso(start)}|{_iso(end)}|{meter}")
    sent = {tuple(key.split("|", 1)) for key in dict(sim.state.rosters)}
    problems: list[str] = []
    groups = await rows(
        engine,
        "SELECT g.market_group_id::text, convert_from(e.body, 'UTF8') "
        "FROM market_groups g JOIN webhook_events e ON e.webhook_event_id = g.source_event_id",
    )
    for group, body in groups:
        payload = json.loads(body)["payload"]
        start, end = (_iso(_instant(payload[k])) for k in ("start_date_time", "end_date_time"))
        window = f"{start}|{end}"
        expected = {f"{window}|{m}" for m in payload["meter_ids"]}
        if found.pop(group, set()) != expected:
            problems.append(f"webhook roster differs from its latest event: {group}|{window}")
        if (group, window) not in sent:
            problems.append(f"latest event names a window the fake Leap never sent: {group}")
    problems += [f"members without a latest event: {group}" for group in found]
    return len(groups), problems


def _iso(value: datetime) -> str:
    from app.leap_sim.shapes import iso

    return iso(value)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def inventory_mismatches(engine: AsyncEngine, sim: RunningSim, run_id: int) -> list[str]:
    """Meters whose stored reference, status or archived flag differ from the fake Leap
    (each noted with the events about it that were applied after the full run ended)."""
    stored = {
        r[0]: (r[1], r[2], r[3])
        for r in await rows(
            engine,
            "SELECT meter_id::text, partner_reference, enrollment_status, is_archived FROM meters",
        )
    }
    late = {
        r[0]: r[1]
        for r in await rows(
            engine,
            "SELECT e.meter_id::text, array_agg(e.status || ' after ' || e.attempts || ' tries')"
            " FROM webhook_events e, sync_runs r WHERE r.id = :id AND e.applied_at > r.finished_at"
            " GROUP BY 1",
            id=run_id,
        )
    }
    portfolio = sim.state.portfolio
    mismatches: list[str] = []
    truth_ids = set()
    for index in range(portfolio.count):
        record = portfolio.enrollment_record(index)
        if record is None:
            continue
        meter_id = record["meter_id"]
        truth_ids.add(meter_id)
        truth = (
            record.get("partner_reference"),
            record["global_enrollment_status"],
            record["is_archived"],
        )
        if stored.get(meter_id) != truth:
            mismatches.append(
                f"{meter_id}: stored {stored.get(meter_id)} Leap {truth}, "
                f"applied after the run: {late.get(meter_id, [])}"
            )
    mismatches += [f"{m}: stored but unknown to Leap" for m in stored.keys() - truth_ids]
    return mismatches


# ---- crash soak ---------------------------------------------------------------------------


class Chaos:
    """SIGKILLs the server and the worker at seeded points of delivery progress."""

    def __init__(
        self, sim: RunningSim, server: Proc, worker: Proc, server_url: str, events: int
    ) -> None:
        self.sim, self.server, self.worker, self.server_url = sim, server, worker, server_url
        rng = random.Random(SEED + 1)
        # Progress = 2xx answers the sender got (every event gets at least one).
        points = sorted(rng.uniform(0.05, 0.85) * events for _ in range(10))
        targets = ["server"] * 5 + ["worker"] * 5
        rng.shuffle(targets)
        self.plan = [
            (point, target, rng.uniform(0.1, 1.0))
            for point, target in zip(points, targets, strict=True)
        ]
        self.log: list[str] = []
        self.downtime = 0.0

    async def run(self) -> None:
        counts = self.sim.state.sender.counts
        for point, target, pause in self.plan:

            def reached(p: float = point) -> bool:
                return counts["attempts_ok"] >= p

            await wait_for(reached, 180, f"progress {point:.0f}")
            proc = self.server if target == "server" else self.worker
            began = time.monotonic()
            proc.kill()
            await asyncio.sleep(pause)
            proc.start()
            if target == "server":
                await wait_for(lambda: healthy(self.server_url), 60, "the server to restart")
                self.downtime += time.monotonic() - began
            self.log.append(f"{target}@{counts['attempts_ok']}")


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="meter-sync-reliability-") as name:
        yield Path(name)


@pytest.mark.parametrize(
    "events",
    [pytest.param(4_000, id="4k"), pytest.param(20_000, id="20k", marks=pytest.mark.soak)],
)
async def test_crash_soak(
    events: int, database_url: str, engine: AsyncEngine, tmp_dir: Path
) -> None:
    clock = Clock()
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    sim: RunningSim | None = None
    control: SimControl | None = None
    procs: list[Proc] = []
    chaos_task: asyncio.Task[None] | None = None
    try:
        base = events // 8
        sim = start_sim(
            meters=base,
            groups=8,
            seed=SEED,
            receiver_url=f"{server_url}/webhooks/leap",
            time_factor=0.001,
            duplicate_probability=0.2,
        )
        control = SimControl(sim)
        env = service_env(database_url, sim.url, tmp_dir, OPS_KEY)
        server = Proc("server", ["serve", "--no-worker", "--port", str(port)], env, tmp_dir / "s")
        worker = Proc("worker", ["worker"], env, tmp_dir / "w")
        procs += [server, worker]
        server.start()
        await wait_for(lambda: healthy(server_url), 60, "the server to start")
        worker.start()
        clock.lap("start")

        groups = [
            g["market_group_id"] for g in (await control.call("GET", "/sim/groups"))["groups"]
        ]
        mix = EventMix(control, SEED, base, groups)
        chaos = Chaos(sim, server, worker, server_url, events)
        chaos_task = asyncio.create_task(chaos.run())
        sender = sim.state.sender
        rounds = 20
        for n in range(rounds):
            # Keep a bounded backlog, so events keep being generated while deliveries run.
            await wait_for(lambda: sender.pending < 1500, 120, "the sender's backlog")
            await mix.emit(events // rounds, rosters=1 if n % 2 == 0 else 0)
        clock.lap("generate")
        await asyncio.wait_for(chaos_task, 200)
        # Leap also changes archival without any event: the reconciliation must catch it.
        some = mix.rng.sample(mix.meter_ids, max(5, events // 400))
        await control.call("POST", "/sim/meters/archive", {"meter_ids": some[: len(some) // 2]})
        await control.call(
            "POST",
            "/sim/meters/archive",
            {"meter_ids": some[len(some) // 2 :], "is_archived": False},
        )
        # A bound against a hang, not a timing: Leap's 8 h schedule at this time factor is
        # ~30 s per event, and under a loaded CI machine a few last retries ran past 120 s.
        assert await control.drain(300), (
            f"sender not drained: {sim.state.sender.stats()} {control.pending_deliveries()}"
        )
        clock.lap("deliver+drain")
        assert server.alive()
        assert worker.alive()

        async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
            response = await http.post(
                "/v1/sync/runs",
                json={"mode": "full"},
                headers={"Authorization": f"Bearer {OPS_KEY}"},
            )
            assert response.status_code == 202, response.text
        run_id = response.json()["id"]

        async def run_finished() -> bool:
            found = await rows(engine, "SELECT status FROM sync_runs WHERE id = :id", id=run_id)
            return found[0][0] in ("succeeded", "failed")

        await wait_for(run_finished, 120, "the full reconciliation run", poll=0.5)
        run = await rows(
            engine, "SELECT status, error, pages, meters FROM sync_runs WHERE id = :id", id=run_id
        )
        assert run[0][0] == "succeeded", run
        clock.lap("full run")
        worker.stop()
        server.stop()

        emitted = await control.emitted()
        deliveries = await control.deliveries()
        counts, problems = await check_exactly_once(engine, emitted, deliveries)
        rosters, roster_problems = await check_rosters(engine, sim)
        mismatches = await inventory_mismatches(engine, sim, run_id)
        runs = await rows(engine, "SELECT status, count(*) FROM sync_runs GROUP BY status")
        jobs = await rows(engine, "SELECT status, count(*) FROM jobs GROUP BY status")
        clock.lap("check")
        stats = sim.state.sender.stats()
        print(
            f"\ncrash soak ({events} events): emitted by kind {dict(mix.emitted)}, "
            f"{mix.rosters} rosters"
            f"\n  deliveries attempted {stats['attempts']} (duplicates {stats['duplicates_sent']}),"
            f" 2xx {stats['attempts_ok']}, failed {stats['attempts_failed']};"
            f" attempt answers {dict(attempt_statuses(deliveries))}"
            f"\n  kills: server {server.kills}, worker {worker.kills} ({', '.join(chaos.log)});"
            f" server down {chaos.downtime:.1f}s in all"
            f"\n  {counts}"
            f"\n  rosters checked {rosters}; meters {sim.state.portfolio.count};"
            f" full run {run[0][2]} pages / {run[0][3]} meters; sync runs {dict(runs)};"
            f" jobs left {dict(jobs)}; inventory mismatches {len(mismatches)}"
            f"\n  {clock.report()}"
        )
        problems += roster_problems
        if mismatches:
            problems.append(f"{len(mismatches)} inventory mismatches, e.g. {mismatches[:3]}")
        assert server.kills == 5
        assert worker.kills == 5
        assert not problems, "\n".join(problems)
    except BaseException:
        for proc in procs:
            print(f"\n--- {proc.name} log tail ---\n{proc.tail()}")
        raise
    finally:
        if chaos_task is not None and not chaos_task.done():
            chaos_task.cancel()
            await asyncio.gather(chaos_task, return_exceptions=True)
        for proc in procs:
            proc.stop()
        if control is not None:
            await control.aclose()
        _stop_sim(sim)


# ---- database outage ----------------------------------------------------------------------

OUTAGE_S = 30.0


async def test_database_outage_answers_503_then_nothing_lost(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    clock = Clock()
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxy_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    sim: RunningSim | None = None
    control: SimControl | None = None
    stop_stream = asyncio.Event()
    stream: asyncio.Task[int] | None = None
    try:
        # The server runs in its own process, as in production: its answers are timed by
        # the sender without sharing an event loop (or the GIL) with the proxy or the sim.
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LEAP_", "API_KEYS", "DATABASE_URL"))
        }
        env.update(
            DATABASE_URL=proxy_url,
            LEAP_WEBHOOK_SECRETS=WEBHOOK_SECRET,
            API_KEYS="ops:outage-ops-key-0123456",
            LOG_LEVEL="WARNING",
            STATE_DIR=str(tmp_path / "state"),
        )
        server = Proc("server", ["serve", "--no-worker", "--port", str(port)], env, tmp_path / "s")
        server.start()
        live_url = f"http://127.0.0.1:{port}"
        try:
            await wait_for(lambda: healthy(live_url), 30, "the server to start")
            # Retries scaled by 0.005: 10 tries over 144 s, enough to outlast a 30 s outage.
            sim = start_sim(
                meters=400,
                groups=4,
                seed=SEED + 2,
                receiver_url=f"{live_url}/webhooks/leap",
                time_factor=0.005,
                duplicate_probability=0.1,
            )
            control = SimControl(sim)
            groups = [
                g["market_group_id"] for g in (await control.call("GET", "/sim/groups"))["groups"]
            ]
            mix = EventMix(control, SEED + 3, 400, groups)

            async def produce() -> int:
                sent = 0
                while not stop_stream.is_set():
                    sent += await mix.emit(8, rosters=1 if sent % 400 == 0 else 0)
                    await asyncio.sleep(0.2)
                return sent

            stream = asyncio.create_task(produce())
            await asyncio.sleep(5)
            clock.lap("before")
            cut_at = datetime.now().astimezone()
            await proxy.cut()
            await asyncio.sleep(OUTAGE_S)
            await proxy.restore()
            restored_at = datetime.now().astimezone()
            clock.lap("outage")
            await asyncio.sleep(5)
            stop_stream.set()
            produced = await asyncio.wait_for(stream, 30)
            assert await control.drain(150), f"sender not drained: {sim.state.sender.stats()}"
            clock.lap("after+drain")
        finally:
            server.stop()

        emitted = await control.emitted()
        deliveries = await control.deliveries()
        attempts = [(d, a) for d in deliveries for a in d["attempts"]]

        def inside(a: JSON) -> bool:
            began = datetime.fromisoformat(a["at"])
            ended = began.timestamp() + a["response_time_ms"] / 1000
            return began >= cut_at and ended <= restored_at.timestamp()

        during = Counter(str(a["status_code"]) for _, a in attempts if inside(a))
        slowest = max((a["response_time_ms"] for _, a in attempts if inside(a)), default=0)
        overall = attempt_statuses(deliveries)
        counts, problems = await check_exactly_once(engine, emitted, deliveries)
        rosters, roster_problems = await check_rosters(engine, sim)
        problems += roster_problems
        clock.lap("check")
        print(
            f"\ndatabase outage ({OUTAGE_S:g} s): events {produced} ({dict(mix.emitted)}),"
            f" proxy connections {proxy.connections}"
            f"\n  attempts during the outage {sum(during.values())}: {dict(during)},"
            f" slowest answer {slowest} ms"
            f"\n  all attempts {len(attempts)}: {dict(overall)}"
            f"\n  {counts}; rosters checked {rosters}"
            f"\n  {clock.report()}"
        )
        assert sum(during.values()) > 0, "no delivery was attempted during the outage"
        assert set(during) == {"503"}, f"answers during the outage: {dict(during)}"
        # The slowest answer is a printed figure, not a pass mark (it depends on the
        # machine's load); the bound only catches an answer that never came.
        assert slowest < 60_000, f"a 503 took {slowest} ms"
        assert "500" not in overall, f"a 500 was answered: {dict(overall)}"
        assert counts["dropped"] == 0
        assert not problems, "\n".join(problems)
    finally:
        stop_stream.set()
        if stream is not None and not stream.done():
            stream.cancel()
        await proxy.close()
        if control is not None:
            await control.aclose()
        _stop_sim(sim)

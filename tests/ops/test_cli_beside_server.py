"""The `meter-sync` command as people use it: the real command in a subprocess, beside a
running `serve` on the embedded PostgreSQL, with none running, and against databases that
are unreachable or unmigrated. Errors are one line saying what to do, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import events
from tests.support.db import admin, server_url
from tests.support.http import deliver
from tests.support.live import free_port
from tests.support.settings import ROOT

CLI = [sys.executable, "-m", "app.cli"]
DOWN = "postgresql://postgres@127.0.0.1:9/none"
GROUP = "406720c2-0175-4137-9ff1-1641702292d4"


def _env(**extra: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "LEAP_", "API_KEYS", "STATE_DIR"))
    }
    return {**clean, "COLUMNS": "160", **extra}


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


# ---------------------------------------------------------------- no database needed


def test_version_and_short_help() -> None:
    version = run_cli("--version", env=_env())
    assert version.returncode == 0
    assert version.stdout.startswith("meter-sync ")
    short = run_cli("-h", env=_env())
    assert short.returncode == 0
    for command in ("meter", "partner", "roster", "events", "status", "sync", "replay"):
        assert command in short.stdout
    assert run_cli("roster", "-h", env=_env()).returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("replay", "not-a-uuid"), "not a webhook_event_id"),
        (("replay",), "--failed / --status"),
        (("replay", "--status", "dead,bogus"), "unknown status 'bogus'"),
        (("events", "--status", "broken"), "received, applied, failed, ignored, dead"),
        (("meter", "42"), "not a meter_id"),
        (("roster", GROUP, "--date", "tomorrow"), "not a date"),
    ],
)
def test_bad_arguments_are_one_line(args: tuple[str, ...], needle: str) -> None:
    result = run_cli(*args, env=_env(DATABASE_URL=DOWN))
    assert result.returncode == 2
    assert_one_line_error(result, needle)


# ---------------------------------------------------------------- unreachable, unmigrated


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("events", "--status", "failed,dead"),
        ("meter", events.CAISO_METER),
        ("partner", "customer-site-123"),
        ("roster", GROUP),
        ("replay", "--failed"),
        ("sync",),
        ("migrate",),
    ],
)
def test_unreachable_database_is_one_line_with_what_to_do(args: tuple[str, ...]) -> None:
    result = run_cli(*args, env=_env(DATABASE_URL=DOWN, LEAP_API_KEY="some-key-123"))
    assert result.returncode == 1
    assert_one_line_error(result, "127.0.0.1:9", "unreachable", "DATABASE_URL")


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    server, _ = server_url()
    name = f"meter_sync_cli_{secrets.token_hex(4)}"
    await admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_unmigrated_database_says_run_migrate(empty_database: str) -> None:
    env = _env(DATABASE_URL=empty_database)
    for args in (("status",), ("events",), ("replay", "--status", "dead")):
        assert_one_line_error(run_cli(*args, env=env), "run `meter-sync migrate`")
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    events_now = run_cli("events", env=env)
    assert events_now.returncode == 0, events_now.stderr
    assert "0 events" in events_now.stdout


# ---------------------------------------------------------------- look-ups on real data


async def test_lookups_print_what_the_api_holds(
    client: httpx.AsyncClient, database_url: str
) -> None:
    meter = str(uuid.uuid4())
    created = events.meter_created(meter_id=meter, partner_reference="site-look-1")
    assert (await deliver(client, events.body(created))).status_code == 202
    roster = events.group_updated([meter], name="PGSB_LOOKUP")
    assert (await deliver(client, events.body(roster))).status_code == 202
    dead_id = str(uuid.uuid4())
    bad = events.meter_created(region="MARS")
    assert (await deliver(client, events.body(bad, dead_id))).status_code == 422
    env = _env(DATABASE_URL=database_url)

    shown = run_cli("meter", meter, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "site-look-1" in shown.stdout
    assert "CAISO" in shown.stdout

    partner = run_cli("partner", "site-look-1", env=env)
    assert partner.returncode == 0, partner.stderr
    assert meter in partner.stdout
    missing = run_cli("partner", "nobody-here", env=env)
    assert_one_line_error(missing, "no partner record")

    table = run_cli("roster", "pgsb_lookup", "--date", "2024-10-05", env=env)
    assert table.returncode == 0, table.stderr
    assert "1 meters" in table.stdout
    assert meter in table.stdout
    as_csv = run_cli("roster", GROUP, "--date", "2024-10-05", "--csv", env=env)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows == [["meter_id", "partner_reference"], [meter, "site-look-1"]]

    listed = run_cli("events", "--status", "failed,dead", env=env)
    assert listed.returncode == 0, listed.stderr
    assert dead_id in listed.stdout
    assert "transmission_region" in listed.stdout  # the short error, shown

    replayed = run_cli("replay", "--status", "dead", env=env)
    assert replayed.returncode == 1  # still dead: the payload is still invalid
    assert dead_id in replayed.stdout
    assert "dead" in replayed.stdout
    nothing = run_cli("replay", "--failed", env=env)
    assert nothing.returncode == 0
    assert "no failed events" in nothing.stdout

    status = run_cli("status", env=env)
    assert status.returncode == 1  # unhealthy: a dead event waits
    assert "unhealthy" in status.stdout
    assert "events_waiting" in status.stdout


# ---------------------------------------------------------------- beside a running serve


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen([*CLI, *args], env=env, cwd=ROOT, stdout=sink, stderr=sink)


def _wait_http(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    within: float = 120,
    any_answer: bool = False,
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} process ended: {log.read_text()[-2000:]}")
        try:
            status = httpx.get(url, timeout=2).status_code
            if status == 200 or (any_answer and status < 500):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def sim_port(tmp_path: Path) -> Iterator[int]:
    """The fake Leap, started as people start it: `meter-sync leap-sim`."""
    port = free_port()
    sim = _start(
        ["leap-sim", "--port", str(port), "--meters", "700", "--groups", "4"],
        _env(),
        tmp_path / "sim.log",
    )
    try:
        # The fake Leap has no probe: any answer means it listens.
        _wait_http(f"http://127.0.0.1:{port}/", sim, tmp_path / "sim.log", 60, any_answer=True)
        yield port
    finally:
        _stop(sim)


@pytest.mark.slow
def test_every_command_works_beside_serve_and_without_it(tmp_path: Path, sim_port: int) -> None:
    state = tmp_path / "state"
    env = _env(
        STATE_DIR=str(state),
        LEAP_API_KEY="sim-key",
        LEAP_API_BASE_URL=f"http://127.0.0.1:{sim_port}",
    )
    port = free_port()
    serve = _start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", serve, tmp_path / "serve.log")
        pid_file = state / "pg" / "postmaster.pid"
        postmaster = pid_file.read_text().split()[0]

        synced = run_cli("sync", env=env, timeout=300)
        assert synced.returncode == 0, synced.stderr
        assert "Traceback" not in synced.stderr
        assert "already running" in synced.stderr  # it used serve's PostgreSQL
        assert "pages of 500" in synced.stdout
        assert "changed:" in synced.stdout
        assert " new, " in synced.stdout
        full = run_cli("sync", "--full", env=env, timeout=300)
        assert full.returncode == 0, full.stderr
        assert "700 meters" in full.stdout

        status = run_cli("status", env=env)
        assert status.returncode in (0, 1), status.stderr  # healthy or not: it answers
        assert "api: reconciling" in status.stdout
        assert "last full run" in status.stdout

        ops_key = json.loads((state / "credentials.json").read_text())["ops_api_key"]
        listed = httpx.get(
            f"http://127.0.0.1:{port}/v1/meters?limit=1",
            headers={"Authorization": f"Bearer {ops_key}"},
            timeout=10,
        )
        assert listed.status_code == 200, listed.text
        meter = listed.json()["items"][0]["meter_id"]
        for args in (
            ("meter", meter),
            ("events", "--status", "failed,dead"),
            ("replay", "--status", "failed,dead"),
            ("migrate",),
            ("config",),
        ):
            result = run_cli(*args, env=env)
            assert result.returncode == 0, (args, result.stderr)
            assert "Traceback" not in result.stderr
        assert_one_line_error(run_cli("replay", "not-a-uuid", env=env), "not a webhook_event_id")
        # Still the one server `serve` started, and `serve` still answers.
        assert pid_file.read_text().split()[0] == postmaster
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        # A second `serve` on the same state directory says so in one line.
        second = run_cli("serve", "--port", str(free_port()), env=env)
        assert_one_line_error(second, "already in use")
    finally:
        _stop(serve)
    assert serve.returncode == 0
    assert not (state / "pg" / "postmaster.pid").exists()

    # With no server running, a command starts its own embedded PostgreSQL and stops it.
    alone = run_cli("events", env=env)
    assert alone.returncode == 0, alone.stderr
    assert "Starting the embedded PostgreSQL" in alone.stderr
    assert not (state / "pg" / "postmaster.pid").exists()

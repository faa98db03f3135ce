"""`meter-sync leap subscribe | status | test` against the fake Leap, over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from app.dispatch.cli import leap_cli
from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.server import RunningSim, serve_in_thread
from app.leap_sim.state import SimState
from app.main import create_app
from tests.dispatch.bodies import JSON
from tests.support.settings import OPS_KEY, READ_KEY, WEBHOOK_SECRET, make_settings

SIM_KEY = "cli-sim-key"


@pytest.fixture
def sim() -> Iterator[RunningSim]:
    state = SimState(
        Portfolio(50, 4, 3, anchor=datetime(2026, 6, 1, tzinfo=UTC)),
        api_key=SIM_KEY,
        sender=Sender(time_factor=0.001),
    )
    running = serve_in_thread(state)
    yield running
    running.stop()


@pytest.fixture
def env(sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in {
        "LEAP_API_KEY": SIM_KEY,
        "LEAP_API_BASE_URL": sim.url,
        "LEAP_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "API_KEYS": f"read:{READ_KEY},ops:{OPS_KEY}",
        "STATE_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def service(database_url: str) -> Iterator[str]:
    """The service in a thread of its own (the CLI runs its own event loop here)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(make_settings(database_url)), log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "service did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(leap_cli, list(args))
    return result.exit_code, result.output


def test_subscribe_registers_all_three_and_updates_in_place(env: Path, sim: RunningSim) -> None:
    for _ in range(2):
        code, output = run("subscribe", "--url", "https://sync.example.com/")
        assert code == 0, output
    [hook] = sim.state.webhooks.values()
    assert hook.receiver_url == "https://sync.example.com/webhooks/leap"
    assert len(hook.event_types) == 7
    assert hook.headers == [{"name": "X-Webhook-Secret", "value": WEBHOOK_SECRET}]
    for kind in ("meter", "group"):
        registration = sim.state.dispatch.registrations[kind]
        assert registration.url == "https://sync.example.com/webhooks/leap/dispatch"
        assert registration.headers == [{"name": "X-Webhook-Secret", "value": WEBHOOK_SECRET}]


def test_status_says_whether_leap_sends_an_accepted_secret(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run("status")
    assert code == 1
    assert "none registered" in output
    assert run("subscribe", "--url", "https://sync.example.com")[0] == 0
    code, output = run("status")
    assert code == 0, output
    assert output.count("secret ok") == 3
    assert WEBHOOK_SECRET not in output
    monkeypatch.setenv("LEAP_WEBHOOK_SECRETS", "another-secret-value")
    code, output = run("status")
    assert code == 1
    assert output.count("NOT accepted here") == 3


def test_test_sends_notifications_stored_as_tests(env: Path, service: str, sim: RunningSim) -> None:
    import httpx

    assert run("subscribe", "--url", service)[0] == 0
    code, output = run("test")
    assert code == 0, output
    assert "meter dispatch integration test: ok" in output
    assert "group dispatch integration test: ok" in output
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    listed = httpx.get(f"{service}/v1/dispatches?include_tests=true", headers=headers).json()
    items: list[JSON] = listed["items"]
    assert sorted(i["kind"] for i in items) == ["group", "meter"]
    assert all(i["integration_test"] for i in items)
    assert httpx.get(f"{service}/v1/dispatches", headers=headers).json()["items"] == []


def test_without_api_key_exits_2(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAP_API_KEY")
    code, output = run("status")
    assert code == 2
    assert "LEAP_API_KEY" in output

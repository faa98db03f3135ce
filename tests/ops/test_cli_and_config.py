"""Configuration, generated credentials, the CLI, logs and packaging."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import SecretStr

from app import config_view
from app.bootstrap import ensure_credentials
from app.config import ConfigError, Settings, load_settings
from app.logs import ConsoleFormatter, JsonFormatter
from tests.support import events
from tests.support.db import migration_head
from tests.support.http import deliver
from tests.support.settings import ROOT, WEBHOOK_SECRET

CLI = [sys.executable, "-m", "app.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "API_KEYS"))}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL"),
        ("API_KEYS", "admin:abc", "unknown scope"),
        ("API_KEYS", "justakey", "scope:key"),
        ("WEBHOOK_MAX_BODY_BYTES", "lots", "WEBHOOK_MAX_BODY_BYTES"),
        ("SYNC_INTERVAL_SECONDS", "-5", "SYNC_INTERVAL_SECONDS"),
        ("LEAP_API_BASE_URL", "ftp://leap", "LEAP_API_BASE_URL"),
        ("MARKET_TIMEZONES", "CAISO=Mars/Olympus", "Mars/Olympus"),
        ("LEAP_WEBHOOK_HEADER", "Bad Header", "LEAP_WEBHOOK_HEADER"),
    ],
)
def test_bad_value_stops_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message


def test_config_command_shows_no_secret_character_and_each_origin(tmp_path: Path) -> None:
    secrets = {
        "LEAP_WEBHOOK_SECRETS": "supersecretvalue-one,supersecretvalue-two",
        "API_KEYS": "read:readkey-abcdefgh,ops:opskey-abcdefghij",
        "LEAP_API_KEY": "leap-key-abcdefghijk",
        "DATABASE_URL": "postgresql://app:p4ssw0rd@db.internal:5432/meters",
    }
    result = run_cli("config", env={**secrets, "STATE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for value in ("supersecretvalue", "readkey", "opskey", "leap-key", "p4ssw0rd"):
        assert value not in out
    # Not even the first or last characters of a secret (they used to be shown).
    for name in ("LEAP_WEBHOOK_SECRETS", "API_KEYS", "LEAP_API_KEY"):
        line = next(x for x in out.splitlines() if x.startswith(name + "="))
        assert "****" not in line, line
        assert line.endswith("(environment)"), line
    assert "LEAP_WEBHOOK_SECRETS=2 secrets  (environment)" in out
    assert "API_KEYS=2 keys: read, ops  (environment)" in out
    assert "LEAP_WEBHOOK_HEADER=X-Webhook-Secret  (default)" in out
    assert "DATABASE_URL=postgresql+asyncpg://app:****@db.internal:5432/meters" in out
    assert "mode=api" in out


def test_config_command_tells_environment_dotenv_generated_and_default(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_credentials(Settings(state_dir=state, _env_file=None))
    generated = json.loads((state / "credentials.json").read_text())
    (tmp_path / ".env").write_text("SYNC_INTERVAL_SECONDS=120\nLOG_LEVEL=WARNING\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LEAP_", "API_KEYS"))}
    result = subprocess.run(
        [*CLI, "config"],
        capture_output=True,
        text=True,
        env={**clean, "STATE_DIR": str(state), "LOG_LEVEL": "ERROR", "PYTHONPATH": str(ROOT)},
        timeout=60,
        cwd=tmp_path,  # where `.env` is read from
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SYNC_INTERVAL_SECONDS=120  (.env)" in out
    assert "LOG_LEVEL=ERROR  (environment)" in out  # the environment wins over .env
    assert "LEAP_WEBHOOK_SECRETS=1 secret  (generated file)" in out
    assert "API_KEYS=1 key: ops  (generated file)" in out
    assert "EVENT_RETENTION_DAYS=30  (default)" in out
    for value in generated.values():
        assert value not in out
        assert value[:4] not in out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEAP_WEBHOOK_SECRETS", "x"),
        ("LEAP_WEBHOOK_SECRETS", "a-long-enough-secret-1,fifteen-chars-x"),
        ("API_KEYS", "read:short"),
        ("API_KEYS", "ops:an-ops-key-long-enough,read:fifteen-chars-x"),
    ],
)
def test_short_secret_or_key_stops_start_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message
    assert "16 characters" in message
    assert "\n" not in message
    for part in value.split(","):
        assert part.partition(":")[2 if ":" in part else 0] not in message


def test_serve_refuses_a_short_key_before_starting() -> None:
    result = run_cli("serve", env={"API_KEYS": "ops:tiny", "DATABASE_URL": "postgresql://x@y/z"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "API_KEYS" in result.stderr
    assert "16" in result.stderr


def test_leap_api_key_is_not_judged_by_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAP_API_KEY", "k")
    assert load_settings().leap_api_key is not None


def test_config_command_bad_value_exits_2_with_one_line() -> None:
    result = run_cli("config", env={"API_KEYS": "root:abc"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "API_KEYS" in result.stderr


def test_first_start_generates_and_keeps_credentials(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    first, notes = ensure_credentials(settings)
    assert len(first.leap_webhook_secrets) == 1
    assert first.api_keys[0].scope == "ops"
    secret = first.leap_webhook_secrets[0].get_secret_value()
    assert any(secret in line for line in notes)
    assert any("/webhooks/leap" in line for line in notes)
    stored = tmp_path / "state" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    # The second start reuses them and prints nothing.
    second, again = ensure_credentials(settings)
    assert again == []
    assert second.leap_webhook_secrets[0].get_secret_value() == secret
    assert json.loads(stored.read_text())["webhook_secret"] == secret


def test_configured_values_win_over_generated(tmp_path: Path) -> None:
    mine = "mine-and-long-enough"
    settings = Settings(state_dir=tmp_path, leap_webhook_secrets=[SecretStr(mine)])
    resolved, _ = ensure_credentials(settings)
    assert [s.get_secret_value() for s in resolved.leap_webhook_secrets] == [mine]
    assert not (tmp_path / "credentials.json").read_text().count("webhook_secret")


HOSTILE = "line one\nline two\r\n\x1b[31mred\x1b[0m\u2028\x00end"


@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter()])
def test_log_records_stay_one_line(formatter: logging.Formatter) -> None:
    record = logging.makeLogRecord(
        {
            "msg": "got %s",
            "args": (HOSTILE,),
            "levelno": 20,
            "levelname": "INFO",
            "partner_reference": HOSTILE,
        }
    )
    line = formatter.format(record)
    for forbidden in ("\n", "\r", "\x1b", "\u2028"):
        assert forbidden not in line


async def test_receiver_logs_no_secret_and_no_newline(
    client: object, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    caplog.set_level(logging.DEBUG)
    payload = events.meter_created(partner_reference="site\nINFO forged line")
    await deliver(client, events.body(payload))
    await deliver(client, events.body(events.meter_created()), secret="wrong-secret-value")
    await deliver(client, events.body(events.meter_created()))
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert lines, "the receiver logged nothing"
    for line in lines:
        assert "\n" not in line
        assert WEBHOOK_SECRET not in line
        assert "wrong-secret-value" not in line


def test_every_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "app").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert {"app.migrations", "app.migrations.versions"} <= listed


def test_migrate_works_from_an_installed_wheel(tmp_path: Path, database_url: str) -> None:
    """Build the wheel from a copy of the sources, install it alone, migrate a new database."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for folder in ("app", "migrations"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("meter_sync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "app/migrations/env.py" in names
    assert any(n.startswith("app/migrations/versions/0001") for n in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    fresh = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_wheel"
    admin = database_url.rsplit("/", 1)[0].replace("postgresql+asyncpg", "postgresql") + "/postgres"
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh.rsplit("/", 1)[1]}"')
    try:
        env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_URL": fresh}
        probe = subprocess.run(
            [sys.executable, "-c", "import app.migrate as m; print(m.__file__)"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert probe.stdout.startswith(str(target)), probe.stdout + probe.stderr
        migrated = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
        with psycopg.connect(fresh.replace("postgresql+asyncpg", "postgresql")) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row == (migration_head(),)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_config_shows_every_setting(tmp_path: Path) -> None:
    shown = config_view.values(Settings(state_dir=tmp_path, _env_file=None))
    assert set(shown) == {name.upper() for name in Settings.model_fields}

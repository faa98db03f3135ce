"""Shared by the benchmarks: a fresh database and meter-sync served in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from app.groups import copies
from app.migrate import upgrade_to_head

SERVER = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432")
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway value for a local benchmark
OPS_KEY = "bench-ops-key-0123456"
ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpus = os.cpu_count()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{platform.machine()}, {cpus} cores, {mem_gb:.0f} GiB, Python {platform.python_version()}"
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{secrets.token_hex(3)}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def confirm_membership_copies(database_url: str) -> int:
    """What the service's worker does after membership writes (app/groups/copies.py):
    the rows' copies of their meter's reference and archived flag, and their `unbeaten`
    flags, are filled in. The benches load rows with SQL and serve with --no-worker, so
    they call it themselves."""

    async def run() -> int:
        engine = create_async_engine(database_url)
        try:
            return await copies.confirm(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve(
    database_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """meter-sync itself, as `meter-sync serve --no-worker` runs it."""
    cli = [sys.executable, "-m", "app.cli", "serve", "--no-worker"]
    with launch(lambda port: [*cli, "--port", str(port), *extra_args], database_url, env) as svc:
        yield svc


@contextlib.contextmanager
def launch(
    command: Callable[[int], list[str]],
    database_url: str,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[Service]:
    """Start `command(port)` with the benchmark's settings; wait until /healthz answers.
    The server's stderr goes to `log` when given (attacks make servers log a lot)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LEAP_WEBHOOK_SECRETS": SECRET,
        "API_KEYS": f"ops:{OPS_KEY}",
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    stderr = log.open("ab") if log is not None else None
    process = subprocess.Popen(
        command(port), env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {command(port)}")
            time.sleep(0.1)
        yield Service(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if stderr is not None:
            stderr.close()


def post_delivery(client: httpx.Client, path: str, body: bytes) -> float:
    """Seconds for one delivery to a receiver (`/webhooks/leap` or its dispatch surface),
    which must be accepted."""
    started = time.perf_counter()
    response = client.post(
        path, content=body, headers={"X-Webhook-Secret": SECRET, "Content-Type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 202 or response.json()["status"] != "accepted":
        raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:200]}")
    return elapsed

"""`meter-sync serve` with DATABASE_URL unset: embedded PostgreSQL up, migrated, and
stopped again when the service gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live import free_port
from tests.support.settings import ROOT


def test_serve_starts_and_stops_the_embedded_postgres(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "LEAP_", "API_KEYS"))
    }
    env["STATE_DIR"] = str(state)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None
        assert ready.status_code == 200, ready.text
        assert (state / "pg" / "postmaster.pid").exists()
        assert (state / "credentials.json").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output.decode(errors="replace")[-2000:]
    # The embedded server was stopped, not left running without its owner.
    assert not (state / "pg" / "postmaster.pid").exists()
    assert b"Webhook secret:" in output

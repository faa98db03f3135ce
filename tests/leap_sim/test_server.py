"""`run()` as the CLI calls it, in a subprocess, and the API key default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.leap_sim.state import DEV_API_KEY, default_api_key

REPO = Path(__file__).resolve().parents[2]


def test_api_key_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAP_SIM_API_KEY", raising=False)
    assert default_api_key() == DEV_API_KEY == "sim-key"
    monkeypatch.setenv("LEAP_SIM_API_KEY", "from-env")
    assert default_api_key() == "from-env"


def test_run_serves_the_portfolio() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from app.leap_sim.server import run; "
        f"run(host='127.0.0.1', port={port}, meters=120, groups=8, seed=4, log_level='warning')"
    )
    env = {**os.environ, "LEAP_SIM_API_KEY": "env-key"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"{url}/v2/meters/search",
                    json={"page_size": 500},
                    headers={"authorization": "Bearer env-key"},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "leap-sim did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert len(response.json()["meters"]) == 120
        assert "next_page_token" not in response.json()
        assert httpx.get(f"{url}/v1.1/webhooks").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)

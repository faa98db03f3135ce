"""Logs for people and machines: the format setting, levels in any case, Leap calls at
DEBUG, probes and Alembic's per-probe chatter left out, and the serve banner."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import logs
from app.config import Settings
from app.migrate import current_revision
from tests.support.settings import make_settings


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """A buffer for `logs.configure(..., stream=)`; the root logger is put back afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_log_level_and_format_read_in_any_case() -> None:
    settings = Settings(_env_file=None, log_level="debug", log_format="JSON")
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "json"
    assert Settings(_env_file=None).log_format == "auto"
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None, log_format="xml")


def test_json_text_and_auto(stderr: io.StringIO) -> None:
    logs.configure("INFO", "json", stream=stderr)
    logging.getLogger("meter_sync.test").info("hello", extra={"meter_id": "m-1"})
    entry = json.loads(stderr.getvalue().splitlines()[-1])
    assert entry["message"] == "hello"
    assert entry["meter_id"] == "m-1"

    logs.configure("INFO", "text", stream=stderr)
    logging.getLogger("meter_sync.test").info("hello again", extra={"meter_id": "m-2"})
    line = stderr.getvalue().splitlines()[-1]
    assert "INFO" in line
    assert "hello again  meter_id=m-2" in line
    assert not line.startswith("{")

    # auto: JSON, since this stderr is no terminal.
    logs.configure("info", "auto", stream=stderr)
    logging.getLogger("meter_sync.test").warning("third")
    assert json.loads(stderr.getvalue().splitlines()[-1])["level"] == "warning"


def test_http_client_requests_are_debug_lines(stderr: io.StringIO) -> None:
    logs.configure("INFO", "json", stream=stderr)
    logging.getLogger("httpx").info('HTTP Request: GET https://leap/v2/meters/1 "200 OK"')
    assert "HTTP Request" not in stderr.getvalue()
    logs.configure("DEBUG", "json", stream=stderr)
    logging.getLogger("httpx").info('HTTP Request: GET https://leap/v2/meters/2 "200 OK"')
    entry = json.loads(stderr.getvalue().splitlines()[-1])
    assert entry["level"] == "debug"
    assert "/v2/meters/2" in entry["message"]


async def test_probes_and_alembic_chatter_are_not_logged(
    stderr: io.StringIO, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    logs.configure("INFO", "json", stream=stderr)
    for path in ("/healthz", "/readyz", "/metrics", "/readyz"):
        assert (await client.get(path)).status_code == 200
    assert await current_revision(engine) is not None
    written = stderr.getvalue()
    assert "Context impl" not in written
    assert "Will assume" not in written
    for path in ("/healthz", "/readyz", "/metrics"):
        assert path not in written
    # Alembic's other lines still come through.
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0004 -> 0005")
    assert "Running upgrade" in stderr.getvalue()


def test_banner_shows_url_docs_and_mode() -> None:
    webhook_only = make_settings("postgresql://u@h/db")
    lines = logs.banner(webhook_only, "http", "0.0.0.0", 8123)  # noqa: S104
    text = "\n".join(lines)
    assert "meter-sync on http://127.0.0.1:8123 (all interfaces)" in text
    assert "http://127.0.0.1:8123/docs" in text
    assert "status page  http://127.0.0.1:8123/" in text
    assert "webhook-only" in text
    api = make_settings("postgresql://u@h/db", leap_api_key="k" * 20)
    assert "mode         api" in "\n".join(logs.banner(api, "https", "10.0.0.5", 443))

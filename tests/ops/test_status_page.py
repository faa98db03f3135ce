"""The status page at `/`: self-contained HTML, no data without a key, and in headless
Chromium with a key: health, the per-minute chart, dead events, runs and today's groups.

The screenshot docs/status-page.png comes from
`SAVE_DOCS_SCREENSHOT=1 .venv/bin/pytest tests/ops/test_status_page.py`.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunMode
from app.sync.runs import request_run
from tests.ops.test_docs_ui import _browser
from tests.support import events
from tests.support.http import deliver, ops_auth, read_auth
from tests.support.live import LiveServer
from tests.support.settings import OPS_KEY, ROOT

SCREENSHOT = (
    ROOT / "docs" / "status-page.png"
    if os.environ.get("SAVE_DOCS_SCREENSHOT") == "1"
    else Path(tempfile.gettempdir()) / "meter-sync-status-page.png"
)
GROUP = "406720c2-0175-4137-9ff1-1641702292d4"
OTHER_METER = "22222222-2222-2222-2222-222222222222"


async def _seed(client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> str:
    """Two meters in a group today, a dead event, a queued run; returns the dead event id."""
    now = datetime.now(UTC)
    start = (now - timedelta(days=2)).strftime("%Y-%m-%dT07:00:00Z")
    end = (now + timedelta(days=3)).strftime("%Y-%m-%dT07:00:00Z")
    deliveries = [
        events.meter_created(),
        events.meter_created(OTHER_METER, partner_reference="customer-site-456"),
        events.group_updated([events.CAISO_METER, OTHER_METER], start=start, end=end),
    ]
    for payload in deliveries:
        assert (await deliver(client, events.body(payload))).status_code == 202
    dead_id = "33333333-3333-4333-8333-333333333333"
    bad = events.global_status(status="ENROLLED")
    await deliver(client, events.body(bad, event_id=dead_id))
    async with sessions() as session:
        await request_run(session, RunMode.DELTA, "request")
        await session.commit()
    return dead_id


async def test_the_page_carries_no_data_and_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    dead_id = await _seed(client, sessions)
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    # Without a key the page holds no data: no id, no group name, no error text.
    for secret in (dead_id, events.CAISO_METER, "PGSB_1_PDRP68", "ENROLLED"):
        assert secret not in page
    # No external assets: no URL with a scheme or a protocol-relative one in any attribute.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    policy = answer.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    # A fresh nonce per answer.
    assert (await client.get("/")).headers["content-security-policy"] != policy


async def test_events_per_minute_counts_every_minute_of_the_window(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await deliver(client, events.body(events.meter_created()))).status_code in (
            200,
            202,
        )
    rate = (await client.get("/v1/webhook-events/per-minute?hours=2", headers=read_auth())).json()
    assert len(rate["minutes"]) == 120
    assert rate["total"] == 3 == sum(m["received"] for m in rate["minutes"])
    # Received just now: in the window's last minute, or the one before if a minute turned.
    assert sum(m["received"] for m in rate["minutes"][-2:]) == 3
    assert rate["capped"] is False
    assert (await client.get("/v1/webhook-events/per-minute")).status_code == 401
    refused = await client.get("/v1/webhook-events/per-minute?hours=25", headers=ops_auth())
    assert refused.status_code == 422


def _look(base_url: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as profile:
        browser = _browser(Path(profile))
        try:
            wait = WebDriverWait(browser, 30)
            browser.get(f"{base_url}/")
            seen: dict[str, str] = {}
            seen["locked"] = browser.find_element(By.ID, "locked").text
            seen["data_hidden"] = str(browser.find_element(By.ID, "data").get_attribute("hidden"))
            key = wait.until(ec.element_to_be_clickable((By.ID, "key")))
            key.send_keys(OPS_KEY)
            browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
            wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
            for section in ("health", "rate", "events", "runs", "groups", "dispatch"):
                seen[section] = browser.find_element(By.ID, section).text
            seen["bars"] = str(len(browser.find_elements(By.CSS_SELECTOR, "#rate-chart rect")))
            seen["key_stored"] = str(
                browser.execute_script("return sessionStorage.getItem('meter-sync-api-key')")
            )
            browser.set_window_size(1280, 1500)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            browser.save_screenshot(str(SCREENSHOT))
            # A reload keeps the key for this tab and shows the data again.
            browser.refresh()
            wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
            seen["after_reload"] = browser.find_element(By.ID, "groups").text
            # Forgetting the key hides everything again.
            browser.find_element(By.ID, "forget").click()
            seen["forgotten_hidden"] = str(
                browser.find_element(By.ID, "data").get_attribute("hidden")
            )
            return seen
        finally:
            browser.quit()


async def test_status_page_in_chromium_shows_health_events_runs_and_groups(
    live: LiveServer,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    dead_id = await _seed(client, sessions)
    seen = await asyncio.to_thread(_look, live.url)
    assert "shows no data without an API key" in seen["locked"]
    assert seen["data_hidden"] == "true"
    assert "mode" in seen["health"]
    assert "webhook-only" in seen["health"]
    assert "dead events\n1" in seen["health"]
    assert int(seen["bars"]) >= 1
    assert "events in the last 3 h" in seen["rate"]
    assert dead_id in seen["events"]
    assert "dead" in seen["events"]
    assert "meter.enrollment.global-status.updated" in seen["events"]
    assert "delta" in seen["runs"]
    assert "queued" in seen["runs"]
    assert "PGSB_1_PDRP68" in seen["groups"]
    assert "CAISO" in seen["groups"]
    assert "2 meters" in seen["groups"]
    assert "timeslots with drift, last 24 h" in seen["dispatch"]
    assert seen["key_stored"] == OPS_KEY
    assert "PGSB_1_PDRP68" in seen["after_reload"]
    assert seen["forgotten_hidden"] == "true"
    assert SCREENSHOT.stat().st_size > 20_000

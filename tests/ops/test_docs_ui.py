"""End to end in headless Chromium: /docs, Authorize with a key, Try it out, see 200.

Needs Debian's `chromium` and `chromium-driver` (scripts/test and .ci/run install them
when missing and they can). The screenshot in docs/docs-try-it-out.png comes from
`SAVE_DOCS_SCREENSHOT=1 ./scripts/test -k docs_authorize`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import events
from tests.support.http import deliver
from tests.support.live import LiveServer
from tests.support.settings import OPS_KEY, ROOT

# Kept in docs/ when asked (SAVE_DOCS_SCREENSHOT=1), so ordinary runs leave the tree clean.
SCREENSHOT = (
    ROOT / "docs" / "docs-try-it-out.png"
    if os.environ.get("SAVE_DOCS_SCREENSHOT") == "1"
    else Path(tempfile.gettempdir()) / "meter-sync-docs-try-it-out.png"
)
OPERATION = "operations-meters-get_meter"


def _browser(profile: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def _try_it_out(base_url: str, meter_id: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        browser = _browser(Path(profile))
        try:
            wait = WebDriverWait(browser, 30)
            browser.get(f"{base_url}/docs")
            click = ec.element_to_be_clickable
            wait.until(click((By.CSS_SELECTOR, "button.authorize"))).click()
            key = wait.until(click((By.CSS_SELECTOR, ".auth-container input")))
            key.send_keys(OPS_KEY)
            browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
            browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done").click()
            # Authorize survives a reload (persistAuthorization): the lock shows as locked.
            browser.refresh()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "button.authorize.locked")))
            block = wait.until(click((By.ID, OPERATION)))
            block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
            wait.until(click((By.CSS_SELECTOR, f"#{OPERATION} button.try-out__btn"))).click()
            field = wait.until(
                click((By.CSS_SELECTOR, f"#{OPERATION} input[placeholder='meter_id']"))
            )
            field.send_keys(meter_id)
            browser.find_element(By.CSS_SELECTOR, f"#{OPERATION} button.execute").click()
            status = wait.until(
                ec.visibility_of_element_located(
                    (
                        By.CSS_SELECTOR,
                        f"#{OPERATION} .live-responses-table tr.response .response-col_status",
                    )
                )
            )
            answer: str = status.text.strip()
            browser.execute_script("arguments[0].scrollIntoView();", status)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            browser.save_screenshot(str(SCREENSHOT))
            return answer
        finally:
            browser.quit()


async def test_docs_authorize_and_try_it_out_gets_200(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    assert (await deliver(client, events.body(events.meter_created()))).status_code == 202
    # The page's own assets come from the service, not a CDN.
    page = (await client.get("/docs")).text
    assert "cdn" not in page.lower()
    status = await asyncio.to_thread(_try_it_out, live.url, events.CAISO_METER)
    assert status == "200"
    assert SCREENSHOT.stat().st_size > 10_000

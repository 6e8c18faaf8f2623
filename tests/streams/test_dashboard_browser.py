"""The dashboard in a real headless browser, fed by a real broker.

A worker (optimizer agent, audit store consumer, web server) runs in this process; Debian's
Chromium, driven by Selenium through Debian's chromedriver (Selenium Manager never runs, so no
browser is downloaded), signs in with the API token, opens the pages, and sees dispatches that
are published *after* the page loaded appear without a reload (server-sent events).

Screenshots of both pages go to a temporary directory; with
`DISPATCH_RL_SCREENSHOT_DIR=docs` they go to the README's `docs/dashboard.png` and
`docs/dispatch.png` instead.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from optimizer.generate import generate_day
from optimizer.seed import seed_day
from schemas import HeuristicDone, Optimized
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token"
LIVE_WAIT_S = 20.0
"""Upper bound for a published day to show on an open page (it takes about a second)."""

T = TypeVar("T")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Debian Chromium under Selenium, with the driver path given explicitly."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "needs Debian's chromium and chromium-driver (scripts/setup.sh WITH_TEST_TOOLS=1)"
        if os.environ.get("CI") == "true":  # CI installs them: a missing browser is a failure
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # belt and braces: Selenium Manager never downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot_dir(tmp_path: Path) -> Path:
    target = os.environ.get("DISPATCH_RL_SCREENSHOT_DIR")
    out = Path(target) if target else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


async def _call(fn: Callable[..., T], *args: Any) -> T:
    # Selenium blocks; the web server answering it runs in this very event loop.
    return await asyncio.to_thread(fn, *args)


async def _wait_for(driver: Any, script: str, timeout: float = LIVE_WAIT_S) -> Any:
    """Poll a JavaScript expression in the page until it is truthy; its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await _call(driver.execute_script, f"return ({script});")
        if value:
            return value
        assert loop.time() < deadline, f"page never satisfied: {script}"
        await asyncio.sleep(0.1)


async def _full_page_screenshot(driver: Any, path: Path) -> None:
    """The whole page, not just the window (Chromium's DevTools protocol)."""

    def shoot() -> None:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        height = max(600, min(int(size["height"]) + 1, 4000))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        path.write_bytes(base64.b64decode(shot["data"]))

    await _call(shoot)


async def _optimized_of(settings: Any, days: list[HeuristicDone]) -> dict[str, Optimized]:
    ids = {d.dispatch_id for d in days}
    records = await read_topic(
        settings,
        settings.topic_optimized,
        done=lambda rs: ids <= {Optimized.model_validate_json(r.value).dispatch_id for r in rs},
        timeout=60,
    )
    found = [Optimized.model_validate_json(r.value) for r in records]
    return {o.dispatch_id: o for o in found if o.dispatch_id in ids}


async def test_pages_update_live_in_a_real_browser(
    kafka_bootstrap: str, tmp_path: Path, browser: Any
) -> None:
    """Rows and bars of days published after the pages opened appear without a reload."""
    settings = unique_settings(
        kafka_bootstrap,
        tmp_path,
        web_enabled=True,
        web_port=0,
        store_enabled=True,
        api_token=TOKEN,
    )
    shots = _screenshot_dir(tmp_path)
    first = [seed_day(), generate_day(12, 3, seed=10), generate_day(30, 5, seed=11)]
    live_day = generate_day(16, 4, seed=12)
    async with running_worker(settings, dataset=False) as worker:
        assert worker.web is not None
        base = worker.web.url

        # The list: sign in, wait for the live stream, then publish.
        await _call(browser.get, f"{base}/login?token={TOKEN}")
        await _wait_for(browser, "document.body.dataset.page === 'dashboard'")
        await _wait_for(browser, "document.getElementById('live').classList.contains('on')")
        await _call(browser.execute_script, "window.notReloaded = true;")
        await publish_events(settings, keyed(first))
        for day in first:
            await _wait_for(
                browser, f"document.querySelector('tr[data-dispatch-id=\"{day.dispatch_id}\"]')"
            )
        assert await _call(browser.execute_script, "return window.notReloaded === true;")
        await _full_page_screenshot(browser, shots / "dashboard.png")

        # One dispatch's page, opened before its day is published: it waits, then fills in.
        await _call(browser.get, f"{base}/dispatches/{live_day.dispatch_id}")
        await _wait_for(browser, "document.getElementById('waiting')")
        await _wait_for(browser, "document.getElementById('live').classList.contains('on')")
        await _call(browser.execute_script, "window.notReloaded = true;")
        published = time.monotonic()
        await publish_events(settings, keyed([live_day]))
        bars = 2 * len(live_day.drivers)
        await _wait_for(browser, f"document.querySelectorAll('#bars .bar').length === {bars}")
        shown_after = time.monotonic() - published
        assert await _call(browser.execute_script, "return window.notReloaded === true;")
        await _wait_for(browser, "document.querySelector('#verdict.ok')")
        await _full_page_screenshot(browser, shots / "dispatch.png")

        rides = await _call(
            browser.execute_script,
            """return [...document.querySelectorAll('#bars .driver')].map(d => [
                 d.dataset.driver,
                 d.querySelector('.bar.before').dataset.rides,
                 d.querySelector('.bar.after').dataset.rides,
                 d.querySelector('.bar.after').getBoundingClientRect().width]);""",
        )
        trail = await _call(
            browser.execute_script, "return document.querySelectorAll('#trail tr.move').length;"
        )
        # The API browser renders offline: Swagger UI's files come from this worker, not a CDN.
        await _call(browser.get, f"{base}/docs")
        await _wait_for(browser, "document.querySelector('.swagger-ui .info .title')")
        operations = await _call(
            browser.execute_script, "return document.querySelectorAll('.opblock').length;"
        )
        await _call(browser.get, "about:blank")  # closes the event stream before the server stops
        outcomes = await _optimized_of(settings, [live_day])

    opt = outcomes[live_day.dispatch_id]
    before, after = opt.metrics.before.rides_per_driver, opt.metrics.after.rides_per_driver
    assert [(d, int(b), int(a)) for d, b, a, _ in rides] == [
        (d.driver_id, before[d.driver_id], after[d.driver_id]) for d in live_day.drivers
    ]
    assert all(width > 0 for _, _, after_rides, width in rides if after_rides != "0")
    assert trail == opt.moves_proposed
    assert operations >= 5, "the /docs page lists the API's operations"
    print(f"bars shown {shown_after:.2f} s after publishing; screenshots in {shots}")
    assert (shots / "dashboard.png").stat().st_size > 10_000
    assert (shots / "dispatch.png").stat().st_size > 10_000

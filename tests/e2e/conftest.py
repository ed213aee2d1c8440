"""Real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the engine
running in-process on a real TCP port, with its demo site and tracker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, Playwright, async_playwright

from engagement.app import create_app
from engagement.settings import Settings

from ..conftest import url

API_KEY = "test-api-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
POLL_INTERVAL_S = 0.05

T = TypeVar("T")
Visit = dict[str, Any]
Launch = Callable[..., Awaitable[Browser]]
Api = TestClient[web.Request, web.Application]


# ---- the engine ------------------------------------------------------------------------------


def engine_url(
    engine: TestServer, name: str, query: Mapping[str, str] | None = None, **parts: str
) -> str:
    """The absolute URL of the route ``name`` on the running engine, with its parts and query."""
    path = engine.app.router[name].url_for(**parts)
    return str(engine.make_url(path.with_query(query) if query is not None else path))


@pytest.fixture
def engine_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        strategies_dir=tmp_path / "strategies",  # none unless a test writes some
        api_keys=[API_KEY],
        history_flush_interval_s=0.05,
        # the defaults, plus the subdomains that Chromium maps to 127.0.0.1 in one test
        allowed_origins=["http://localhost:*", "http://127.0.0.1:*", "http://*.shop.test:*"],
    )


@pytest.fixture
async def engine(aiohttp_server: Any, engine_settings: Settings) -> TestServer:
    """The engine on a real port of 127.0.0.1, serving the demo site at /demo/."""
    server: TestServer = await aiohttp_server(create_app(engine_settings))
    return server


@pytest.fixture
async def api(aiohttp_client: Any, engine: TestServer) -> Api:
    """A client of the engine's REST API, with the API key."""
    client: Api = await aiohttp_client(engine, headers={"X-API-Key": API_KEY})
    return client


# ---- the browser -----------------------------------------------------------------------------


@pytest.fixture
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest.fixture
async def launch_browser(playwright: Playwright, engine: TestServer) -> AsyncIterator[Launch]:
    """Launch Chromium with the standard flags plus ``extra_args``; all close at the end.

    Depends on ``engine`` so that browsers close (and send their last beacons) before the
    engine stops.
    """
    browsers: list[Browser] = []

    async def launch(*extra_args: str) -> Browser:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args]
        )
        browsers.append(browser)
        return browser

    yield launch
    for browser in browsers:
        await browser.close()


@pytest.fixture
async def browser(launch_browser: Launch) -> Browser:
    return await launch_browser()


# ---- helpers ---------------------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 10) -> T:
    """Run ``check`` until it stops failing an assertion; its last failure after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(POLL_INTERVAL_S)


async def fetch_visit(api: Api, visit_id: str) -> Visit:
    r = await api.get(url(api, "visit", visitID=visit_id))
    assert r.status == 200, await r.text()
    visit: Visit = await r.json()
    return visit


async def wait_for_visit(
    api: Api, visit_id: str, until: Callable[[Visit], bool], timeout_s: float = 10
) -> Visit:
    """The visit from the history API, once ``until(visit)`` holds."""

    async def check() -> Visit:
        visit = await fetch_visit(api, visit_id)
        assert until(visit), visit
        return visit

    return await eventually(check, timeout_s)


def event_names(visit: Visit) -> list[str]:
    return [e["eventName"] for e in visit["events"]]


def page_ids(visit: Visit) -> list[str]:
    return [p["pageID"] for p in visit["pages"]]


async def get_ids(page: Page) -> dict[str, str]:
    """The IDs the tracker gave this page, through the public ``getIDs`` command (which also
    waits for the tracker to load: commands pushed before it loads run when it does)."""
    ids: dict[str, str] = await page.evaluate(
        "() => new Promise(resolve => window._gt.push(['getIDs', resolve]))"
    )
    return ids


# Two registrable domains on this machine, and third-party cookies blocked (as Safari and Firefox
# do by default, and Chrome under its phase-out): the set-up of docs/privacy.md's tests.
TWO_DOMAINS_ARGS = (
    "--host-resolver-rules=MAP shop.test 127.0.0.1, MAP *.shop.test 127.0.0.1, "
    "MAP shop-pay.test 127.0.0.1, MAP *.shop-pay.test 127.0.0.1",
    "--test-third-party-cookie-phaseout",
)


@pytest.fixture
async def two_domains_browser(launch_browser: Launch) -> Browser:
    """Chromium resolving shop.test and shop-pay.test (and subdomains) to this machine, with
    third-party cookies blocked."""
    return await launch_browser(*TWO_DOMAINS_ARGS)

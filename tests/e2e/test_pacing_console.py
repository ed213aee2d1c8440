"""The pacing page in real headless Chromium: it follows the feed without a reload."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from .conftest import Api, engine_url, url
from .test_console import engine, engine_settings, screenshot, signed_in_agent

pytestmark = pytest.mark.browser
__all__ = ["engine", "engine_settings"]  # the console's fixtures, reused


async def test_pacing_page_updates_live(browser: Browser, engine: TestServer, api: Api):
    r = await api.put(
        url(api, "availability-group", group="sales"), json={"agentsReady": 0, "agentsBusy": 2}
    )
    assert r.status == 200, await r.text()
    agent = await signed_in_agent(browser, engine)
    reloads: list[str] = []
    await agent.goto(engine_url(engine, "console-pacing"))
    agent.on("framenavigated", lambda frame: reloads.append(frame.url))
    allowed = agent.locator('tr[data-group="sales"] td.allowed')
    await expect(allowed).to_have_text("0")

    r = await api.put(
        url(api, "availability-group", group="sales"), json={"agentsReady": 2, "agentsBusy": 0}
    )
    assert r.status == 200, await r.text()

    await expect(allowed).to_have_text("3", timeout=10_000)  # 2 free slots at 25 %: 3
    await expect(agent.locator("svg.chart")).to_contain_text("2 slots · 3 invitations allowed")
    assert reloads == []
    await screenshot(agent, "pacing.png")

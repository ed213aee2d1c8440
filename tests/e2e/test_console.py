"""The console in real headless Chromium: sign in, watch a visitor arrive, read the strategy
report, invite a visitor from the visit's page. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from engagement.settings import Settings

from ..conftest import Factory
from ..test_console import INVITES, console_app
from .conftest import API_KEY, Api, engine_url, get_ids, url, wait_for_visit

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(update={"invites_dir": INVITES})


@pytest.fixture
async def engine(aiohttp_server: Any, engine_settings: Settings) -> TestServer:
    """The engine with its console, on a real port."""
    server: TestServer = await aiohttp_server(console_app(engine_settings))
    return server


async def signed_in_agent(browser: Browser, engine: TestServer) -> Page:
    """An agent's tab, signed in through the login form, on the live visitors page."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(engine_url(engine, "console-login"))
    await page.fill("#key", API_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(engine_url(engine, "console-visitors"))
    return page


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


async def test_wrong_key_stays_on_the_login_form(browser: Browser, engine: TestServer):
    page = await browser.new_page()
    await page.goto(engine_url(engine, "console-visitors"))
    await page.wait_for_url(engine_url(engine, "console-login", {"next": "/console/"}))

    await page.fill("#key", "not-the-key")
    await page.get_by_role("button", name="Sign in").click()

    await expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")


async def test_live_visitor_appears_without_reloading(browser: Browser, engine: TestServer):
    agent = await signed_in_agent(browser, engine)
    await expect(agent.locator("#no-visitors")).to_be_visible()
    reloads: list[str] = []
    agent.on("framenavigated", lambda frame: reloads.append(frame.url))

    visitor = await (await browser.new_context()).new_page()
    await visitor.goto(engine_url(engine, "demo", filename="products.html"))
    ids = await get_ids(visitor)

    row = agent.locator(f'tr[data-visit="{ids["visitID"]}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row).to_contain_text("Products · Demo Shop")
    await expect(row).to_contain_text("anonymous")
    await expect(agent.locator("#live-status")).to_contain_text("1 on the site now")
    await expect(agent.locator("#no-visitors")).to_be_hidden()
    assert reloads == []
    await screenshot(agent, "visitors.png")


async def engage(api: Api, engine: TestServer, strategy: str, *codes: str) -> None:
    """A new visit, an attempt for it through the GWE gateway, then the visitor's answers."""
    factory = Factory()
    origin = {"Origin": str(engine.make_url("/")).rstrip("/")}
    events = factory.start(engine_url(engine, "demo", filename="pricing.html"), "Pricing")
    r = await api.post(url(api, "events"), json={"events": events}, headers=origin)
    assert r.status == 200, await r.text()
    profile = {"visitID": factory.visit_id, "invite": "chat.html", "media": "chat"}
    r = await api.post(
        "/server/data/gateway/engage", json={"ixnProfile": {**profile, "strategy": strategy}}
    )
    assert r.status == 200, await r.text()
    attempt_id = (await r.json())["attemptID"]
    for code in codes:
        query = {"visitID": factory.visit_id, "code": code}
        r = await api.get(
            url(api, "disposition", attemptID=attempt_id), params=query, headers=origin
        )
        assert r.status == 200, await r.text()


async def test_strategy_report_chart(engine: TestServer, api: Api, browser: Browser):
    for codes in (
        ["shown", "accepted", "launched", "completed"],
        ["shown", "accepted", "launched"],
        ["shown", "declined"],
        ["shown", "timed_out"],
        [],
    ):
        await engage(api, engine, "pricing-dwell", *codes)
    for codes in (["shown", "accepted"], ["shown", "declined"], ["shown", "declined"]):
        await engage(api, engine, "big-cart", *codes)
    await engage(api, engine, "returning-stall", "shown", "accepted", "launched", "completed")
    agent = await signed_in_agent(browser, engine)

    await agent.get_by_role("link", name="Strategy report").click()

    chart = agent.locator("svg.chart")
    await expect(chart).to_be_visible()
    for name in ("pricing-dwell", "big-cart", "returning-stall"):
        await expect(chart.get_by_text(name, exact=True)).to_be_visible()
    await expect(chart).to_contain_text("acceptance 50.0 %")  # pricing-dwell: 2 of 4 shown
    await expect(chart).to_contain_text("acceptance 33.3 %")  # big-cart: 1 of 3
    box = await chart.bounding_box()
    assert box is not None
    assert box["width"] > 600
    await screenshot(agent, "report.png")

    await agent.select_option("select[name=strategy]", "big-cart")
    await agent.get_by_role("button", name="Show").click()
    await expect(agent.locator("svg.chart")).not_to_contain_text("pricing-dwell")
    await expect(agent.locator("svg.chart")).to_contain_text("big-cart")


async def test_invite_now_reaches_the_visitor(engine: TestServer, api: Api, browser: Browser):
    # api before browser: the browser (with its open push stream) closes before the engine
    visitor = await (await browser.new_context()).new_page()
    await visitor.goto(engine_url(engine, "demo", filename="products.html"))
    ids = await get_ids(visitor)
    await wait_for_visit(api, ids["visitID"], lambda v: len(v["pages"]) == 1)
    agent = await signed_in_agent(browser, engine)
    await agent.locator(f'tr[data-visit="{ids["visitID"]}"] a').click()
    await agent.wait_for_url(engine_url(engine, "console-visit", visitID=ids["visitID"]))

    await agent.select_option("select[name=invite]", "chat.html")
    await agent.select_option("select[name=media]", "chat")
    await agent.fill("input[name=agent]", "Grace")
    await agent.get_by_role("button", name="Invite").click()

    await expect(agent.get_by_role("status")).to_contain_text("Invitation chat.html (chat) sent")
    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["attempts"]) == 1)
    [attempt] = visit["attempts"]
    assert (attempt["origin"], attempt["strategy"]) == ("agent", "agent:Grace")
    assert (attempt["invite"], attempt["media"], attempt["pageID"]) == (
        "chat.html",
        "chat",
        ids["pageID"],
    )
    assert [t["state"] for t in attempt["transitions"]][:2] == ["detected", "offered"]
    await expect(agent.locator(".attempt")).to_contain_text("agent:Grace")
    await expect(agent.get_by_role("button", name="Invite")).to_be_disabled()
    await screenshot(agent, "visit.png")

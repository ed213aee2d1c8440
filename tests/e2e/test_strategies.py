"""A strategy decides in a real browser visit: dwell on a page, and a declared click event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from engagement.settings import Settings

from .conftest import Api, engine_url, fetch_visit, get_ids, wait_for_visit

pytestmark = pytest.mark.browser

DWELL_S = 1.5  # short, for the test; the shipped example waits 30 s
STRATEGIES = f"""
categories:
  pricing: ["/pricing"]
events:
  - name: ShippingChosen
    trigger: click
    selector: "[data-step=shipping]"
strategies:
  - name: pricing-dwell
    when:
      all:
        - url: /pricing.html     # on the page now (a category counts pages seen before)
        - time_on_page_s: {DWELL_S}
    offer: {{invite: chat.html, media: chat, params: {{queue: sales}}}}
  - name: shipping-help
    when:
      event: ShippingChosen
    offer: {{invite: callback.html, media: callback}}
"""


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    folder = engine_settings.strategies_dir
    folder.mkdir(parents=True)
    (folder / "test.yaml").write_text(STRATEGIES)
    return engine_settings


async def test_dwell_invites_the_visitor_who_stays_not_the_one_who_leaves(
    engine: TestServer, api: Api, browser: Browser, tmp_path: Path
):
    stayer = await (await browser.new_context()).new_page()
    leaver = await (await browser.new_context()).new_page()

    await leaver.goto(engine_url(engine, "demo", filename="pricing.html"))
    leaver_ids = await get_ids(leaver)
    await leaver.goto(engine_url(engine, "demo-index"))  # leaves the pricing page before the dwell
    await stayer.goto(engine_url(engine, "demo", filename="pricing.html"))
    stayer_ids = await get_ids(stayer)

    stayed = await wait_for_visit(api, stayer_ids["visitID"], lambda v: bool(v["attempts"]))
    (attempt,) = stayed["attempts"]
    assert attempt["strategy"] == "pricing-dwell"
    assert attempt["pageID"] == stayer_ids["pageID"]
    assert attempt["params"] == {"queue": "sales"}
    pricing_entered = next(p["enteredAt"] for p in stayed["pages"])
    assert attempt["createdAt"] - pricing_entered >= DWELL_S * 1000

    # The leaver's dwell would have ripened by now too: nothing for them.
    await asyncio.sleep(0.5)
    left = await fetch_visit(api, leaver_ids["visitID"])
    assert left["attempts"] == []
    assert [p["url"].rsplit("/", 1)[1] for p in left["pages"]] == ["pricing.html", ""]


async def test_declared_click_event_needs_no_site_code(engine: TestServer, api: Api,
                                                       browser: Browser):  # fmt: skip
    page = await (await browser.new_context()).new_page()
    await page.goto(engine_url(engine, "demo", filename="cart.html"))
    ids = await get_ids(page)
    await page.click("[data-step=shipping]")

    visit = await wait_for_visit(api, ids["visitID"], lambda v: bool(v["attempts"]))
    shipping = [e for e in visit["events"] if e["eventName"] == "ShippingChosen"]
    assert len(shipping) == 1
    assert shipping[0]["eventType"] == "BUSINESS"
    assert [a["strategy"] for a in visit["attempts"]] == ["shipping-help"]

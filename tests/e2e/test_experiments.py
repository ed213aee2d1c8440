"""Experiments in real headless Chromium: a held-out visitor is recorded and sees nothing, an
invited one sees its variant's invitation, and both convert on the goal page."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from engagement.settings import Settings
from engagement.strategy.experiment import bucket

from .conftest import Api, engine_url, eventually, get_ids, wait_for_visit

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: chat.html, media: chat}
    holdout: 50%
    goal: {page: /demo/cart.html, within_h: 1}
    variants:
      - {name: chat, weight: 1}
      - {name: callback, invite: callback.html, media: callback, weight: 1}
"""
BIG = ".add-to-cart[data-price='1199']"
HOST = ".eng-invite-host"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    folder = engine_settings.strategies_dir
    folder.mkdir(parents=True)
    (folder / "experiment.yaml").write_text(STRATEGIES)
    return engine_settings.model_copy(update={"invites_dir": ROOT / "invites"})


def visitor_in(held_out: bool) -> str:
    """A globalVisitID that the assignment puts in (or out of) the holdout."""
    n = 0
    while True:
        gvid = f"{n:032X}"
        if (bucket(gvid, "big-cart") < 0.5) == held_out:
            return gvid
        n += 1


@pytest.mark.parametrize("held_out", [True, False])
async def test_holdout_sees_nothing_and_both_groups_convert(
    engine: TestServer, api: Api, browser: Browser, held_out: bool
):
    gvid = visitor_in(held_out)
    context = await browser.new_context()
    await context.add_cookies(
        [{"name": "_eng_gvid", "value": gvid, "url": engine_url(engine, "demo-index")}]
    )
    page = await context.new_page()
    await page.goto(engine_url(engine, "demo", filename="products.html"))
    ids = await get_ids(page)
    assert ids["globalVisitID"] == gvid
    await wait_for_visit(api, ids["visitID"], lambda v: v["live"])
    await page.click(BIG)

    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["attempts"]) == 1)
    (attempt,) = visit["attempts"]
    if held_out:
        assert (attempt["state"], attempt["variant"]) == ("held_out", "holdout")
        await expect(page.locator(HOST)).to_have_count(0)
        await page.goto(
            engine_url(engine, "demo", filename="cart.html")
        )  # nothing came meanwhile either
        await expect(page.locator(HOST)).to_have_count(0)
    else:
        expected = "callback" if (bucket(gvid, "big-cart") - 0.5) / 0.5 >= 0.5 else "chat"
        assert attempt["variant"] == expected
        assert attempt["media"] == expected
        await expect(page.locator(HOST)).to_have_attribute("data-eng-attempt", attempt["attemptID"])
        await page.goto(engine_url(engine, "demo", filename="cart.html"))

    arm = "holdout" if held_out else attempt["variant"]

    async def converted() -> list[tuple[str, int, int]]:
        r = await api.get(api.app.router["report-experiments"].url_for())
        assert r.status == 200, await r.text()
        found = [(a["arm"], a["qualified"], a["converted"]) for a in (await r.json())["arms"]]
        assert found == [(arm, 1, 1)], found
        return found

    await eventually(converted, 10)

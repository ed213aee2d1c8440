"""A visit across two registrable domains in real Chromium, third-party cookies blocked: a link
carries a single-use token, the other domain's tracker redeems it and goes on with the same
visit (its invitation state too); a replayed token starts a new visit; Widgets' async chat
session saved on one domain is restored on the other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from engagement.api.linking import LINKS
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.privacy.links import Link
from engagement.settings import Settings

from ..conftest import url
from .conftest import API_KEY, Api, eventually, get_ids, page_ids, wait_for_visit

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    limits: {per_visit: 1}
    offer: {invite: chat.html, media: chat}
"""
DECLINE = ".eng-invite-host [data-eng-action=decline]"
BIG = ".add-to-cart[data-price='1199']"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    folder = engine_settings.strategies_dir
    folder.mkdir(parents=True)
    (folder / "cart.yaml").write_text(STRATEGIES)
    return engine_settings.model_copy(update={
        "invites_dir": ROOT / "invites",
        "linked_domains": ["shop.test", "shop-pay.test"],
        # 127.0.0.1: an allowed site on no linked domain
        "allowed_origins": ["http://www.shop.test:*", "http://www.shop-pay.test:*",
                            "http://127.0.0.1:*"],
    })  # fmt: skip


def on(domain: str, engine: TestServer, page: str = "") -> str:
    return f"http://www.{domain}:{engine.port}/demo/{page}"


async def entered(api: Api, page: Page) -> dict[str, str]:
    """The page's IDs once the engine has the page in the visit."""
    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    return ids


async def link_to(page: Page, href: str) -> None:
    """A link the site has to the other domain, followed by the visitor."""
    await page.evaluate(
        """href => { const a = document.createElement('a'); a.id = 'pay'; a.href = href;
                     a.textContent = 'Pay'; document.body.prepend(a); }""",
        href,
    )
    await page.click("#pay")


async def test_a_link_to_the_other_domain_keeps_the_visit_and_its_invitation_state(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    page = await (await two_domains_browser.new_context()).new_page()
    await page.goto(on("shop.test", engine, "products.html"))
    ids = await entered(api, page)
    await page.click(BIG)  # the strategy invites; the visitor declines
    await page.locator(DECLINE).click()
    await wait_for_visit(api, ids["visitID"], lambda v: [a["state"] for a in v["attempts"]]
                         == ["declined"])  # fmt: skip
    tokens: list[str] = []
    page.on("request", lambda r: tokens.append(r.url) if "_eng_link=" in r.url else None)

    await link_to(page, on("shop-pay.test", engine, "products.html?step=pay"))

    await page.wait_for_url(on("shop-pay.test", engine, "products.html?step=pay"))  # token gone
    there = await entered(api, page)
    assert (there["visitID"], there["globalVisitID"]) == (ids["visitID"], ids["globalVisitID"])
    assert len(tokens) == 1
    assert ids["visitID"] not in tokens[0]
    await page.click(BIG)  # same strategy, same visit: per_visit 1 holds it back
    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["pages"]) == 2 and any(
        h["reason"] == "limit per_visit" for h in v["heldBack"]))  # fmt: skip
    assert [p["url"].split("/")[2].split(":")[0] for p in visit["pages"]] == [
        "www.shop.test", "www.shop-pay.test"]  # fmt: skip
    assert [a["state"] for a in visit["attempts"]] == ["declined"]
    await expect(page.locator(".eng-invite-host")).to_have_count(0)
    assert not [e for e in visit["events"] if e["eventName"] == "VisitStarted"][1:]


async def test_a_replayed_token_starts_a_new_visit(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    page = await (await two_domains_browser.new_context()).new_page()
    await page.goto(on("shop.test", engine, "products.html"))
    ids = await entered(api, page)
    followed: list[str] = []
    page.on("request", lambda r: followed.append(r.url) if "_eng_link=" in r.url else None)
    await link_to(page, on("shop-pay.test", engine, "pricing.html"))
    await page.wait_for_url(on("shop-pay.test", engine, "pricing.html"))
    assert (await entered(api, page))["visitID"] == ids["visitID"]

    other = await (await two_domains_browser.new_context()).new_page()  # the URL, shared
    await other.goto(followed[0])

    replayed = await entered(api, other)
    assert replayed["visitID"] != ids["visitID"]
    assert replayed["globalVisitID"] != ids["globalVisitID"]


async def test_a_forged_token_starts_a_new_visit(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    page = await (await two_domains_browser.new_context()).new_page()
    forged = "A" * 22 + ".9999999999." + "B" * 22

    await page.goto(on("shop-pay.test", engine, f"pricing.html?_eng_link={forged}"))

    ids = await entered(api, page)
    visit = await wait_for_visit(api, ids["visitID"], lambda v: v["live"])
    assert [e["eventName"] for e in visit["events"]][:1] == ["VisitStarted"]


@pytest.mark.parametrize("case", ["expired", "not a linked domain"])
async def test_an_expired_token_or_one_on_a_domain_not_linked_starts_a_new_visit(
    engine: TestServer, api: Api, two_domains_browser: Browser, case: str
):
    page = await (await two_domains_browser.new_context()).new_page()
    await page.goto(on("shop.test", engine, "products.html"))
    ids = await entered(api, page)
    link = Link(ids["visitID"], ids["globalVisitID"], None, f"http://www.shop.test:{engine.port}")
    issued_ms = now_ms() - 3_600_000 if case == "expired" else now_ms()
    token, _ = await engine.app[LINKS].issue(link, issued_ms)
    there = "http://127.0.0.1:{}/demo/pricing.html" if case != "expired" else None
    address = (there or on("shop-pay.test", engine, "pricing.html")).format(engine.port)

    other = await (await two_domains_browser.new_context()).new_page()
    await other.goto(f"{address}?_eng_link={token}")

    arrived = await entered(api, other)
    assert arrived["visitID"] != ids["visitID"]
    assert arrived["globalVisitID"] != ids["globalVisitID"]
    assert "_eng_link" not in other.url
    if case != "expired":  # refused for the page's domain, the token was not used up
        pay = f"http://www.shop-pay.test:{engine.port}"
        r = await api.post(url(api, "link-redeem"), json={"token": token}, headers={"Origin": pay})
        assert r.status == 200, await r.text()


CHAT_SESSION = """() => new Promise(resolve => _gt.push(['chatSession', resolve]))"""


async def test_a_chat_session_saved_on_one_domain_is_restored_on_the_other(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    widgets_session: dict[str, Any] = {"sessionId": "S-1", "alias": "chat", "userId": "U-9"}
    page = await (await two_domains_browser.new_context()).new_page()
    await page.goto(on("shop.test", engine, "products.html"))
    await entered(api, page)
    assert await page.evaluate(f"async () => (await ({CHAT_SESSION})()).restore()") is None
    # What Widgets does once the async chat has started: getSessionData(sessionData, ...).
    await page.evaluate(f"async data => (await ({CHAT_SESSION})()).save(data)", widgets_session)
    key = await page.evaluate("() => localStorage.getItem('_eng_key')")
    assert key is not None

    async def saved_on_the_engine() -> None:  # a new chatSession reads it from the engine
        session = await page.evaluate(f"async () => (await ({CHAT_SESSION})()).restore()")
        assert session is not None

    await eventually(saved_on_the_engine)
    await link_to(page, on("shop-pay.test", engine, "pricing.html"))
    await page.wait_for_url(on("shop-pay.test", engine, "pricing.html"))
    await entered(api, page)

    # What Widgets does on the new page: setSessionData(...) gives back the saved session.
    restored = await page.evaluate(f"async () => (await ({CHAT_SESSION})()).restore()")

    assert restored is not None
    assert json.loads(restored) == widgets_session
    assert await page.evaluate("() => localStorage.getItem('_eng_key')") == key


async def test_with_consent_mode_the_token_leaves_the_address_bar_before_consent_there(
    aiohttp_server: Any, aiohttp_client: Any, engine_settings: Settings,
    two_domains_browser: Browser,
):  # fmt: skip
    """Consent is asked on each domain: the token waits for it, in memory only (a URL copied
    or read by the page's other scripts meanwhile carries none), then the visit goes on."""
    engine: TestServer = await aiohttp_server(create_app(engine_settings.model_copy(
        update={"consent_mode": True})))  # fmt: skip
    api: Api = await aiohttp_client(engine, headers={"X-API-Key": API_KEY})
    page = await (await two_domains_browser.new_context()).new_page()
    await page.goto(on("shop.test", engine, "products.html"))
    await page.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    ids = await entered(api, page)
    followed: list[str] = []
    page.on("request", lambda r: followed.append(r.url) if "_eng_link=" in r.url else None)

    await link_to(page, on("shop-pay.test", engine, "pricing.html"))

    await page.wait_for_url(on("shop-pay.test", engine, "pricing.html"))  # before consent there
    assert len(followed) == 1
    await page.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    there = await entered(api, page)
    assert (there["visitID"], there["globalVisitID"]) == (ids["visitID"], ids["globalVisitID"])


async def test_a_link_followed_after_a_withdrawal_in_another_tab_carries_no_visit(
    aiohttp_server: Any, aiohttp_client: Any, engine_settings: Settings,
    two_domains_browser: Browser,
):  # fmt: skip
    """The visitor withdraws in one tab of the site; another tab, on another subdomain (no
    storage event comes), has not heard of it when the visitor follows its link to the linked
    domain: the link carries no token and the engine is asked for none."""
    settings = engine_settings.model_copy(update={
        "consent_mode": True,
        "allowed_origins": [*engine_settings.allowed_origins, "http://store.shop.test:*"],
    })  # fmt: skip
    engine: TestServer = await aiohttp_server(create_app(settings))
    api: Api = await aiohttp_client(engine, headers={"X-API-Key": API_KEY})
    context = await two_domains_browser.new_context()
    first = await context.new_page()
    await first.goto(on("shop.test", engine, "products.html"))
    await first.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    other = await context.new_page()
    await other.goto(f"http://store.shop.test:{engine.port}/demo/products.html")
    await entered(api, other)
    asked: list[str] = []
    other.on("request", lambda r: asked.append(r.url) if "_eng_link=" in r.url or
             "/link" in r.url else None)  # fmt: skip

    await first.evaluate("() => _gt.push(['consent', {analytics: false, engagement: false}])")
    await link_to(other, on("shop-pay.test", engine, "pricing.html"))

    await other.wait_for_url(on("shop-pay.test", engine, "pricing.html"))
    assert asked == []

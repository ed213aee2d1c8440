"""Consent mode in real Chromium: nothing stored in the browser and nothing sent before the site
pushes consent; the engine's own first-party cookie; withdrawing deletes what was stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, expect

from engagement.api.state import REGISTRY
from engagement.app import create_app
from engagement.settings import Settings

from .conftest import Api, eventually, fetch_visit, get_ids, page_ids, wait_for_visit

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BIG_CART = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: chat.html, media: chat}
"""


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    engine_settings.strategies_dir.mkdir(parents=True)
    (engine_settings.strategies_dir / "cart.yaml").write_text(BIG_CART)
    return engine_settings.model_copy(update={
        "invites_dir": ROOT / "invites",
        "consent_mode": True,
        "allowed_origins": [*engine_settings.allowed_origins, "http://shop.test:*"],
    })  # fmt: skip


def shop(engine: TestServer, page: str = "", host: str = "shop.test") -> str:
    return f"http://{host}:{engine.port}/demo/{page}"


async def stored(context: BrowserContext, page: Page) -> dict[str, Any]:
    """What the tracker keeps in this browser: cookies, and localStorage keys."""
    keys = await page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('_eng_'))")
    return {
        "cookies": sorted(c["name"] for c in await context.cookies()),
        "localStorage": sorted(keys),
    }


# The EventSources a page opens, counted as it opens them (its request goes out later).
COUNT_STREAMS = """(() => {
  const Real = window.EventSource;
  window.streamsOpened = 0;
  window.EventSource = function (url, init) { window.streamsOpened++; return new Real(url, init); };
})()"""


async def stream_asked(sent: list[str]) -> None:
    assert "notifications/stream" in sent, sent


def recorder(page: Page) -> list[str]:
    """The paths of the requests the page sends to the engine's browser endpoints."""
    sent: list[str] = []

    def record(request: Request) -> None:
        if request.resource_type in ("fetch", "xhr", "eventsource", "ping"):
            sent.append(urlsplit(request.url).path.lstrip("/"))

    page.on("request", record)
    return sent


async def test_nothing_is_stored_nor_sent_before_consent(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    context = await two_domains_browser.new_context()
    page = await context.new_page()
    sent = recorder(page)
    await page.goto(shop(engine, "products.html"))
    ids = await get_ids(page)  # the tracker runs: IDs in memory only
    await page.click(".add-to-cart[data-price='1199']")  # a business event, before consent
    await page.wait_for_load_state("networkidle")

    assert await stored(context, page) == {"cookies": [], "localStorage": []}
    assert sent == []
    assert len(engine.app[REGISTRY]) == 0

    await page.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")

    after = await get_ids(page)
    assert after["visitID"] != ids["visitID"]  # the visit the engine hears of starts now
    visit = await wait_for_visit(api, after["visitID"], lambda v: after["pageID"] in page_ids(v))
    assert [e["eventName"] for e in visit["events"]] == ["VisitStarted", "PageEntered"]
    assert await stored(context, page) == {
        "cookies": ["_eng_consent", "_eng_gvid", "_eng_visit"], "localStorage": ["_eng_focus"],
    }  # fmt: skip
    assert sent[0] == "monitoring/events"

    # The next page remembers the choice: the visit goes on without the site asking again.
    await page.goto(shop(engine, "pricing.html"))
    again = await get_ids(page)
    assert again["visitID"] == after["visitID"]
    await wait_for_visit(api, after["visitID"], lambda v: again["pageID"] in page_ids(v))


async def test_withdrawing_consent_deletes_what_was_stored(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    context = await two_domains_browser.new_context()
    page = await context.new_page()
    await page.goto(shop(engine, "products.html"))
    await page.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    await page.evaluate("() => localStorage.setItem('site-own', '1')")  # not the tracker's
    assert (await stored(context, page))["cookies"] == ["_eng_consent", "_eng_gvid", "_eng_visit"]

    await page.evaluate("() => _gt.push(['consent', {analytics: false, engagement: false}])")

    assert await stored(context, page) == {"cookies": [], "localStorage": []}
    assert await page.evaluate("() => localStorage.getItem('site-own')") == "1"
    sent = recorder(page)
    await page.click(".add-to-cart[data-price='1199']")
    await page.goto(shop(engine, "pricing.html"))  # no consent remembered: idle again
    await page.wait_for_load_state("networkidle")
    assert sent == []
    assert await stored(context, page) == {"cookies": [], "localStorage": []}


async def test_withdrawing_in_one_tab_holds_in_the_other_tabs_of_the_site(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    """A tab of the site open since before the withdrawal finds the consent cookie gone: it
    neither writes its cookies again nor sends anything more."""
    context = await two_domains_browser.new_context()
    first = await context.new_page()
    await first.goto(shop(engine, "products.html"))
    await first.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    other = await context.new_page()
    sent = recorder(other)
    await other.goto(shop(engine, "pricing.html"))  # the choice remembered: the visit goes on
    ids = await get_ids(other)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    # Its push stream, opened once the answer to its PageEntered came, and asked for after that
    # (the engine may see the visit before the page does): what follows is what it sends after.
    await eventually(lambda: stream_asked(sent))
    sent.clear()

    await first.evaluate("() => _gt.push(['consent', {analytics: false, engagement: false}])")

    await other.evaluate("""() => { history.pushState({}, '', 'pricing.html?plan=pro');
                                   _gt.push(['event', 'AddToCart', {data: {price: 10}}]); }""")
    assert await stored(context, other) == {"cookies": [], "localStorage": []}
    await other.goto(shop(engine, "products.html"))  # its last page's exit: not sent either
    await other.wait_for_load_state("networkidle")
    assert sent == []
    assert await stored(context, other) == {"cookies": [], "localStorage": []}


async def test_a_tab_yet_to_hear_of_a_withdrawal_opens_no_push_stream(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    """The other tab's first events are on their way when the visitor withdraws in the first;
    their answer, which would open its push stream, comes before the storage event of the
    withdrawal. Here that event never comes: the tabs are on two subdomains of the site, which
    share the consent cookie but not localStorage. The tab reads the cookie, not its memory of
    it: no stream, nothing sent."""
    context = await two_domains_browser.new_context()
    first = await context.new_page()
    await first.goto(shop(engine, "products.html", "www.shop.test"))
    await first.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    other = await context.new_page()
    await other.add_init_script(COUNT_STREAMS)
    held: list[Route] = []  # its requests of events, not answered until the test says

    async def hold(route: Route) -> None:
        held.append(route)

    await other.route("**/monitoring/events", hold)
    await other.goto(shop(engine, "pricing.html", "store.shop.test"))

    async def on_their_way() -> None:
        assert [json.loads(r.request.post_data or "")["events"][-1]["eventName"] for r in held] == [
            "PageEntered"]  # fmt: skip

    await eventually(on_their_way)
    queue = f"_eng_q_{(await get_ids(other))['pageID']}"  # its events, mirrored until answered
    assert queue in await other.evaluate("() => Object.keys(localStorage)")
    sent = recorder(other)
    await first.evaluate("() => _gt.push(['consent', {analytics: false, engagement: false}])")
    assert await stored(context, first) == {"cookies": [], "localStorage": []}

    await held[0].continue_()

    async def answered() -> None:  # the answer handled, in the task that would open the stream
        assert queue not in await other.evaluate("() => Object.keys(localStorage)")

    await eventually(answered)
    assert await other.evaluate("() => window.streamsOpened") == 0
    await other.evaluate("() => _gt.push(['event', 'AddToCart', {data: {price: 10}}])")
    assert await stored(context, other) == {"cookies": [], "localStorage": []}
    assert sent == []


async def test_an_invitation_answered_after_a_withdrawal_elsewhere_sends_nothing(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    """An invitation is on screen in a tab when the visitor withdraws in another tab of the site
    (another subdomain: no storage event comes). Accepting it then hands no visit data to a chat
    and tells the engine nothing: the invitation closes, the attempt stays as it was."""
    context = await two_domains_browser.new_context()
    first = await context.new_page()
    await first.goto(shop(engine, "products.html", "www.shop.test"))
    await first.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")
    other = await context.new_page()
    await other.goto(shop(engine, "products.html", "store.shop.test"))
    ids = await get_ids(other)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    await other.click(".add-to-cart[data-price='1199']")
    dialog = other.locator(".eng-invite-host .eng-invite")
    await expect(dialog).to_be_visible()
    visit = await wait_for_visit(api, ids["visitID"], lambda v: bool(v["attempts"]))
    attempt = visit["attempts"][-1]
    await eventually(lambda: shown(api, ids["visitID"]))
    sent = recorder(other)
    await first.evaluate("() => _gt.push(['consent', {analytics: false, engagement: false}])")

    await dialog.locator("[data-eng-action=accept]").click()
    await expect(dialog).to_be_hidden()
    await other.wait_for_load_state("networkidle")
    assert sent == []
    assert await other.evaluate("() => (window.__webchatOpens || []).length") == 0
    visit = await fetch_visit(api, ids["visitID"])
    assert [(a["attemptID"], a["state"]) for a in visit["attempts"]] == [
        (attempt["attemptID"], "shown")]  # fmt: skip


async def shown(api: Api, visit_id: str) -> None:
    visit = await fetch_visit(api, visit_id)
    assert visit["attempts"][-1]["state"] == "shown", visit["attempts"][-1]


async def test_a_grant_in_one_tab_is_followed_by_the_other_tabs_of_the_site(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    """Analytics granted alone, then engagement too in another tab: this tab follows the
    visitor's choice (its events go out) and keeps what it stores."""
    context = await two_domains_browser.new_context()
    first = await context.new_page()
    await first.goto(shop(engine, "products.html"))
    await first.evaluate("() => _gt.push(['consent', {analytics: true}])")
    other = await context.new_page()
    await other.goto(shop(engine, "pricing.html"))
    gvid = (await get_ids(other))["globalVisitID"]

    await first.evaluate("() => _gt.push(['consent', {analytics: true, engagement: true}])")

    await other.evaluate("() => _gt.push(['event', 'AddToCart', {data: {price: 10}}])")
    ids = await get_ids(other)  # the visit the engine hears of starts now
    visit = await wait_for_visit(api, ids["visitID"], lambda v: "AddToCart" in [
        e["eventName"] for e in v["events"]])  # fmt: skip
    assert visit["globalVisitID"] == gvid
    assert "_eng_consent" in (await stored(context, other))["cookies"]


async def test_engagement_alone_sends_with_ids_kept_in_memory(
    engine: TestServer, api: Api, two_domains_browser: Browser
):
    """A site that counts engagement strictly necessary grants it alone: events go out, and
    nothing is stored in the browser."""
    context = await two_domains_browser.new_context()
    page = await context.new_page()
    await page.goto(shop(engine, "products.html"))

    await page.evaluate("() => _gt.push(['consent', {engagement: true}])")

    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    assert await stored(context, page) == {"cookies": [], "localStorage": []}

    # Invitations come (the strategy invites) and show, their state kept in the page only.
    await page.click(".add-to-cart[data-price='1199']")
    await expect(page.locator(".eng-invite-host")).to_have_count(1)
    await page.locator(".eng-invite-host [data-eng-action=decline]").click()
    await wait_for_visit(api, ids["visitID"], lambda v: [a["state"] for a in v["attempts"]]
                         == ["declined"])  # fmt: skip
    await expect(page.locator(".eng-invite-host")).to_have_count(0)
    assert await stored(context, page) == {"cookies": [], "localStorage": []}


async def test_the_engine_keeps_the_visitor_id_in_its_own_httponly_cookie(
    aiohttp_server: Any, engine_settings: Settings, two_domains_browser: Browser
):
    settings = engine_settings.model_copy(update={"consent_mode": False,
                                                  "first_party_cookie": True})  # fmt: skip
    engine: TestServer = await aiohttp_server(create_app(settings))
    context = await two_domains_browser.new_context()
    page = await context.new_page()
    await page.goto(shop(engine, "products.html"))
    ids = await get_ids(page)

    cookies = {c["name"]: c for c in await context.cookies()}
    assert sorted(cookies) == ["_eng_visit", "_eng_visitor"]  # no script-written _eng_gvid
    mine = cookies["_eng_visitor"]
    assert (mine["value"], mine["httpOnly"]) == (ids["globalVisitID"], True)
    assert mine["expires"] > 0  # two years, not a session cookie
    assert not await page.evaluate("() => document.cookie.includes('_eng_visitor')")
    await page.goto(shop(engine, "pricing.html"))
    assert (await get_ids(page))["globalVisitID"] == ids["globalVisitID"]

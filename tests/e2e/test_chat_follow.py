"""A chat accepted on one page is followed on every page of the visit, in real headless Chromium:
the demo's Widgets stand-in restores the chat after each navigation (as Widgets does), the
engine's Widgets plugin reports what happens to it wherever it happens, and lets go of it once
the attempt is over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Request, expect

from . import test_handoff as handoff
from .conftest import Api, engine_url, eventually, get_ids, wait_for_visit
from .test_handoff import (
    EXPENSIVE,
    INVITATION,
    RECORD_OPENS,
    attempt_in,
    chatting,
    invited,
    shopper,
    states,
)

pytestmark = pytest.mark.browser

# The fixtures of the hand-off tests (strategies, settings, the GMS double), reused as they are.
strategies = handoff.strategies
overrides = handoff.overrides
demo_gms = handoff.demo_gms
gms = handoff.gms
engine_settings = handoff.engine_settings
engine = handoff.engine

CHAT_PANEL = "#demo-chat"
SESSION = "() => JSON.parse(sessionStorage.getItem('demo-widgets-chat'))"


def reported(page: Page) -> list[tuple[str, str]]:
    """(attemptID, code) of every disposition the page sends from now on, in order."""
    sent: list[tuple[str, str]] = []

    def record(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.path.startswith("/dispositions/"):
            sent.append((parts.path.rsplit("/", 1)[1], parse_qs(parts.query)["code"][0]))

    page.on("request", record)
    return sent


def code_is(code: str) -> Callable[[Request], bool]:
    return lambda r: "/dispositions/" in r.url and f"code={code}" in r.url


async def browse(page: Page, engine: TestServer, filename: str, **query: str) -> None:
    """Open another page of the shop; the chat is restored there and followed."""
    async with page.expect_request(code_is("restored")):
        await page.goto(engine_url(engine, "demo", query or None, filename=filename))
    await expect(page.locator(CHAT_PANEL)).to_contain_text("Chat restored.")


async def test_chat_ended_two_pages_later_completes_and_frees_the_visit(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await chatting(api, browser, engine)
    first = await attempt_in(api, ids["visitID"], "launched")
    codes = reported(page)

    await browse(page, engine, "pricing.html")
    await browse(page, engine, "product.html", sku="WH15")
    await page.click(f"{CHAT_PANEL} [data-demo=end]")

    ended = await attempt_in(api, ids["visitID"], "completed")
    assert ended["attemptID"] == first["attemptID"]
    assert states(ended) == ["detected", "offered", "shown", "accepted", "launched", "completed"]
    assert codes == [
        (first["attemptID"], "restored"),
        (first["attemptID"], "restored"),
        (first["attemptID"], "completed"),
    ]
    await page.goto(engine_url(engine, "demo", filename="products.html"))
    await invited(page)  # strict mode let go: the visit is invited again
    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["attempts"]) == 2)
    assert visit["attempts"][0]["state"] == "completed"


async def test_a_failed_request_during_the_chat_is_not_its_end(
    engine: TestServer, api: Api, browser: Browser
):
    """Widgets publishes WebChatService.error for any failed request to the chat server; the
    session goes on (offline, then back online), so the attempt stays launched and followed."""
    page, ids = await chatting(api, browser, engine)
    first = await attempt_in(api, ids["visitID"], "launched")
    codes = reported(page)
    async with page.expect_response(code_is("error")):
        await page.evaluate("() => CXBus.publish('WebChatService.error', {status: 502})")

    # Still engaged: strict mode holds the visit, and says so.
    await page.locator(EXPENSIVE).dispatch_event("click")  # the chat panel covers the button
    visit = await wait_for_visit(api, ids["visitID"], lambda v: bool(v["heldBack"]))
    assert [(h["strategy"], h["reason"]) for h in visit["heldBack"]] == [
        ("big-cart-chat", "strict mode: an engagement is live")
    ]
    assert [a["state"] for a in visit["attempts"]] == ["launched"]
    await browse(page, engine, "pricing.html")
    await page.click(f"{CHAT_PANEL} [data-demo=end]")

    ended = await attempt_in(api, ids["visitID"], "completed")
    assert ended["transitions"][-1]["reason"] == "chat ended"
    assert codes == [
        (first["attemptID"], "error"),
        (first["attemptID"], "restored"),
        (first["attemptID"], "completed"),
    ]


async def test_site_user_data_is_merged_into_the_chat(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    site = {"customerSegment": "gold", "queue": "site-queue"}
    await page.evaluate("d => { _genesys.widgets.webchat.userData = d; }", site)
    await page.evaluate(RECORD_OPENS)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    await attempt_in(api, ids["visitID"], "launched")

    opens = await page.evaluate("() => window.__webchatOpens")
    assert [o["userData"] for o in opens] == [
        {
            "customerSegment": "gold",
            "queue": "sales",  # the strategy's params.userData names the queue of this chat
            "visitID": ids["visitID"],
            "pageID": ids["pageID"],
            "webengagement": "",
        }
    ]
    assert await page.evaluate("() => _genesys.widgets.webchat.userData") == site


async def test_chat_already_open_gets_the_attached_data(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    await page.evaluate("() => CXBus.command('WebChat.open', {userData: {topic: 'returns'}})")
    await expect(page.locator(CHAT_PANEL)).to_be_visible()
    codes = reported(page)

    await page.locator(EXPENSIVE).dispatch_event("click")  # the chat panel covers the button
    dialog = page.locator(INVITATION)
    await dialog.locator("[data-eng-action=accept]").click()

    attempt = await attempt_in(api, ids["visitID"], "launched")
    assert attempt["transitions"][-1]["reason"] == "already open"
    session = await page.evaluate(SESSION)
    assert session["userData"] == {
        "topic": "returns",
        "queue": "sales",
        "visitID": ids["visitID"],
        "pageID": ids["pageID"],
        "webengagement": "",
    }
    assert codes == [(attempt["attemptID"], c) for c in ("shown", "accepted", "already_open")]

    await page.click(f"{CHAT_PANEL} [data-demo=end]")  # the chat it joined ends: so does it
    ended = await attempt_in(api, ids["visitID"], "completed")
    assert states(ended)[-3:] == ["accepted", "launched", "completed"]


async def test_a_later_chat_of_the_visitor_leaves_the_ended_attempt_alone(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await chatting(api, browser, engine)
    await page.click(f"{CHAT_PANEL} [data-demo=end]")
    ended = await attempt_in(api, ids["visitID"], "completed")
    codes = reported(page)

    # The visitor opens a chat by themselves, browses on with it, and ends it.
    await page.evaluate("() => CXBus.command('WebChat.open', {userData: {topic: 'returns'}})")
    await expect(page.locator(CHAT_PANEL)).to_be_visible()
    await page.goto(engine_url(engine, "demo", filename="pricing.html"))
    await expect(page.locator(CHAT_PANEL)).to_contain_text("Chat restored.")
    await page.click(f"{CHAT_PANEL} [data-demo=end]")
    await expect(page.locator(CHAT_PANEL)).to_have_count(0)
    await page.evaluate("() => _gt.push(['event', 'AfterChat', {data: {}}])")
    visit = await wait_for_visit(
        api, ids["visitID"], lambda v: "AfterChat" in [e["eventName"] for e in v["events"]]
    )

    assert codes == []
    assert visit["attempts"] == [ended]
    new_ids = await get_ids(page)
    assert new_ids["visitID"] == ids["visitID"]


async def test_a_new_page_learns_the_live_chat_from_its_stream(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await chatting(api, browser, engine)
    attempt = await attempt_in(api, ids["visitID"], "launched")
    # A page that does not have the attempt in its storage (another subdomain, say).
    await page.evaluate("() => localStorage.removeItem('_eng_chat')")
    await page.goto(engine_url(engine, "demo", filename="pricing.html"))

    async def following() -> Any:
        stored = await page.evaluate("() => JSON.parse(localStorage.getItem('_eng_chat'))")
        assert stored == {"attemptID": attempt["attemptID"], "media": "chat"}

    await eventually(following)
    await expect(page.locator(CHAT_PANEL)).to_contain_text("Chat restored.")
    await page.click(f"{CHAT_PANEL} [data-demo=end]")
    ended = await attempt_in(api, ids["visitID"], "completed")
    assert states(ended)[-2:] == ["launched", "completed"]


async def test_widgets_loaded_after_the_tracker_are_joined_through_an_extension(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await chatting(api, browser, engine)
    stub = "**/demo/widgets-stub.js"
    await page.route(stub, lambda route: route.abort())  # Widgets late: configured, not loaded
    await page.add_init_script("window._genesys = {widgets: {webchat: {}}}")
    await page.goto(engine_url(engine, "demo", filename="pricing.html"))
    await page.wait_for_function("() => !!(_genesys.widgets.extensions || {}).Engagement")

    await page.unroute(stub)
    async with page.expect_request(code_is("restored")):
        await page.add_script_tag(url=engine_url(engine, "demo", filename="widgets-stub.js"))
    await page.click(f"{CHAT_PANEL} [data-demo=end]")
    ended = await attempt_in(api, ids["visitID"], "completed")
    assert states(ended)[-2:] == ["launched", "completed"]


NEVER_STARTS = """() => {
  const bus = _genesys.widgets.bus, command = bus.command;
  bus.command = function (name) {  // Widgets still loading when the tab closes: no chat starts
    return name === 'WebChat.open' ? new Promise(() => {}) : command.apply(this, arguments);
  };
}"""


@pytest.mark.parametrize("overrides", [{"accepted_expiration_s": 1}], ids=["expiry-1s"])
async def test_accepted_then_the_tab_closed_expires_and_frees_the_visit(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    await page.evaluate(NEVER_STARTS)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    await attempt_in(api, ids["visitID"], "accepted")
    await page.close()

    expired = await attempt_in(api, ids["visitID"], "failed")
    assert expired["transitions"][-1]["reason"] == "accepted, never launched in 1 s"
    again = await page.context.new_page()  # the visitor comes back in another tab
    await again.goto(engine_url(engine, "demo", filename="products.html"))
    await invited(again)
    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["attempts"]) == 2)
    assert [a["state"] for a in visit["attempts"]][:1] == ["failed"]

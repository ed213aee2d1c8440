"""The hand-off in real headless Chromium: an accepted chat opens Genesys Widgets (the demo's
stand-in bus) with the visit's data attached and reports back how the chat goes; an accepted
callback reaches GMS (a recording double, or the engine's own demo GMS) with the exact form."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from playwright.async_api import Browser, Locator, Page, Route, expect

from engagement.app import create_app
from engagement.settings import Settings

from .conftest import API_KEY, Api, Visit, engine_url, eventually, get_ids, url, wait_for_visit

pytestmark = pytest.mark.browser

INVITES = Path(__file__).resolve().parents[2] / "invites"
CHAT = """
strategies:
  - name: big-cart-chat
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    limits: {per_visit: 5, cooldown_after_chat_s: 0}
    offer: {invite: chat.html, media: chat, params: {userData: {queue: sales}}}
"""
CALLBACK = """
strategies:
  - name: big-cart-callback
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: callback.html, media: callback, params: {service: sales-cb}}
"""
EXPENSIVE = ".add-to-cart[data-price='1199']"  # the 1199 laptop: over 500
INVITATION = ".eng-invite-host .eng-invite"  # a dialog, then (callback) a status
CONFIRMED = "Thank you! We will call you back as soon as possible."
FINALIZE = "Thank you, please do not reply."
THROTTLED = "We have received too many requests. Please try again later, or call us."
REQUEST_ID = re.compile(r"[0-9A-Fa-f]{32}")

# Wraps the bus's command (the object the tracker reads: _genesys.widgets.bus, alias CXBus) to
# keep a copy of the options of every WebChat.open.
RECORD_OPENS = """() => {
  const bus = window._genesys.widgets.bus;
  const command = bus.command;
  window.__webchatOpens = [];
  bus.command = function (name, options) {
    if (name === 'WebChat.open') window.__webchatOpens.push(JSON.parse(JSON.stringify(options)));
    return command.apply(this, arguments);
  };
}"""


class GMSDouble:
    """Answers like GMS callback and records every request: mode 'up', 'down' (503) or
    'reject' (400)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)

    async def callback(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append(
            {"path": request.path, "method": request.method, "form": form, "mode": self.mode}
        )
        if self.mode == "down":
            return web.json_response({"message": "unavailable"}, status=503)
        if self.mode == "reject":
            return web.json_response({"message": "Invalid _desired_time"}, status=400)
        return web.json_response({"_id": f"gms-{len(self.requests)}"})


# ---- fixtures: tests choose the strategies, settings and GMS by parametrizing these ----------


@pytest.fixture
def strategies() -> str:
    return CHAT


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def demo_gms() -> bool:
    """True: no gms_url, the engine on a port known in advance, so its demo GMS is reachable."""
    return False


@pytest.fixture
async def gms(aiohttp_server: Any) -> tuple[GMSDouble, TestServer]:
    double = GMSDouble()
    server: TestServer = await aiohttp_server(double.app)
    return double, server


@pytest.fixture
def engine_settings(
    engine_settings: Settings,
    gms: tuple[GMSDouble, TestServer],
    strategies: str,
    overrides: dict[str, Any],
    demo_gms: bool,
) -> Settings:
    folder = engine_settings.strategies_dir
    folder.mkdir(parents=True)
    (folder / "handoff.yaml").write_text(strategies)
    update: dict[str, Any] = {"invites_dir": INVITES}
    if demo_gms:
        update["port"] = unused_port()
    else:
        update["gms_url"] = str(gms[1].make_url(""))
    return engine_settings.model_copy(update={**update, **overrides})


@pytest.fixture
async def engine(aiohttp_server: Any, engine_settings: Settings, demo_gms: bool) -> TestServer:
    port = engine_settings.port if demo_gms else None
    server: TestServer = await aiohttp_server(create_app(engine_settings), port=port)
    return server


# ---- helpers ---------------------------------------------------------------------------------


async def shopper(browser: Browser, engine: TestServer) -> tuple[Page, dict[str, str]]:
    """A visitor on the demo's product list, with the IDs the tracker gave the page."""
    page = await (await browser.new_context(locale="en-US")).new_page()
    await page.goto(engine_url(engine, "demo", filename="products.html"))
    return page, await get_ids(page)


async def invited(page: Page) -> Locator:
    """Put the 1199 laptop in the cart; the invitation the strategy sends, on screen."""
    await page.click(EXPENSIVE)
    dialog = page.locator(INVITATION)
    await expect(dialog).to_be_visible()
    return dialog


async def attempt_in(api: Api, visit_id: str, state: str, count: int = 1) -> dict[str, Any]:
    """The visit's last attempt, once the visit has ``count`` and the last is in ``state``."""

    def ready(v: Visit) -> bool:
        return len(v["attempts"]) == count and v["attempts"][-1]["state"] == state

    visit = await wait_for_visit(api, visit_id, ready)
    attempt: dict[str, Any] = visit["attempts"][-1]
    return attempt


async def chatting(api: Api, browser: Browser, engine: TestServer) -> tuple[Page, dict[str, str]]:
    """A visitor who accepted a chat invitation: the demo chat is open, the attempt launched."""
    page, ids = await shopper(browser, engine)
    await page.evaluate(RECORD_OPENS)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    await expect(page.locator("#demo-chat")).to_be_visible()
    await attempt_in(api, ids["visitID"], "launched")
    return page, ids


async def ask_callback(page: Page, number: str) -> Locator:
    dialog = page.locator(INVITATION)
    await dialog.locator("input[name=_customer_number]").fill(number)
    await dialog.locator("button[type=submit]").click()
    return dialog


def states(attempt: dict[str, Any]) -> list[str]:
    return [t["state"] for t in attempt["transitions"]]


# ---- chat ------------------------------------------------------------------------------------


async def test_accepted_chat_opens_widgets_with_the_visit_attached(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    await page.evaluate(RECORD_OPENS)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()

    await expect(page.locator("#demo-chat")).to_be_visible()
    await expect(page.locator(INVITATION)).to_have_count(0)
    opens = await page.evaluate("() => window.__webchatOpens")
    assert len(opens) == 1, opens
    assert opens[0]["userData"] == {
        "queue": "sales",
        "visitID": ids["visitID"],
        "pageID": ids["pageID"],
        "webengagement": "",
    }
    await expect(page.locator("#demo-chat .demo-chat-data")).to_contain_text('"queue": "sales"')
    attempt = await attempt_in(api, ids["visitID"], "launched")
    assert attempt["strategy"] == "big-cart-chat"
    assert states(attempt)[-2:] == ["accepted", "launched"]


async def test_no_second_invitation_until_the_chat_ends(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await chatting(api, browser, engine)

    await page.click(EXPENSIVE)  # over 500 again, during the chat
    visit = await wait_for_visit(
        api, ids["visitID"], lambda v: [e["eventName"] for e in v["events"]].count("AddToCart") == 2
    )
    # Events and the attempts they start are written together: none was started.
    assert [a["state"] for a in visit["attempts"]] == ["launched"]

    await page.click("#demo-chat [data-demo=end]")
    await expect(page.locator("#demo-chat")).to_have_count(0)
    ended = await attempt_in(api, ids["visitID"], "completed")
    assert states(ended)[-2:] == ["launched", "completed"]

    await invited(page)  # a third time: the visit is free again
    visit = await wait_for_visit(api, ids["visitID"], lambda v: len(v["attempts"]) == 2)
    assert visit["attempts"][0]["state"] == "completed"
    assert visit["attempts"][1]["attemptID"] != ended["attemptID"]
    assert visit["attempts"][1]["strategy"] == "big-cart-chat"


async def test_chat_started_reported_before_the_acceptance_still_launches(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    launched_answered = asyncio.Event()
    answers: list[int] = []

    async def reorder(route: Route) -> None:  # 'accepted' reaches the engine after 'launched'
        if "code=accepted" in route.request.url:
            await launched_answered.wait()
            await route.continue_()
        elif "code=launched" in route.request.url:
            response = await route.fetch()
            answers.append(response.status)
            launched_answered.set()
            await route.fulfill(response=response)
        else:
            await route.continue_()

    await page.route("**/dispositions/**", reorder)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    await expect(page.locator("#demo-chat")).to_be_visible()
    attempt = await attempt_in(api, ids["visitID"], "launched")

    async def launched_answered_200() -> None:  # the route records it after the engine answered
        assert answers == [200]  # the early 'launched' implied the acceptance

    await eventually(launched_answered_200)
    assert states(attempt)[-2:] == ["accepted", "launched"]


@pytest.mark.parametrize("overrides", [{"chat_finalize_message": FINALIZE}], ids=["finalize"])
@pytest.mark.parametrize("async_chat", [True, False], ids=["async", "not-async"])
async def test_agent_finalizing_the_chat_completes_the_engagement(
    engine: TestServer, api: Api, browser: Browser, async_chat: bool
):
    page, ids = await shopper(browser, engine)
    if async_chat:
        await page.evaluate("() => { _genesys.widgets.webchat.transport.async.enabled = true; }")
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    chat = page.locator("#demo-chat")
    await expect(chat).to_be_visible()
    await attempt_in(api, ids["visitID"], "launched")

    await chat.locator("[data-demo=finalize]").click()

    if async_chat:  # the visitor is told, the chat stays open
        await expect(chat.locator(".demo-chat-system")).to_have_text(FINALIZE)
        await expect(chat).to_be_visible()
    else:  # the chat ends
        await expect(chat).to_have_count(0)
    attempt = await attempt_in(api, ids["visitID"], "completed")
    assert states(attempt)[-2:] == ["launched", "completed"]


# ---- callback --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategies", [CALLBACK], ids=["callback"])
async def test_accepted_callback_reaches_gms_with_the_exact_form(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    double = gms[0]
    page, ids = await shopper(browser, engine)
    dialog = await invited(page)

    await ask_callback(page, "12ab")
    await expect(dialog.locator("[data-eng-error]")).to_contain_text("Please enter a phone number")
    await expect(dialog.locator("input[name=_customer_number]")).to_be_visible()
    await ask_callback(page, "+33 1 23 45 67 89")
    await expect(dialog).to_contain_text(CONFIRMED)

    attempt = await attempt_in(api, ids["visitID"], "completed")  # GMS took it
    assert attempt["handoff"]["gmsID"] == "gms-1"
    assert states(attempt)[-2:] == ["accepted", "completed"]
    (received,) = double.requests
    assert (received["method"], received["path"]) == (
        "POST",
        "/genesys/1/service/callback/sales-cb",
    )
    form = received["form"]
    assert REQUEST_ID.fullmatch(form["_engagement_request_id"]), form
    assert form == {
        "_customer_number": "+33123456789",
        "_desired_time": "now",
        "visitID": ids["visitID"],
        "pageID": ids["pageID"],
        "webengagement": "",
        "_engagement_request_id": attempt["handoff"]["requestID"],
    }


@pytest.mark.parametrize(
    "strategies",
    [CALLBACK.replace("    offer:", "    limits: {per_visit: 5}\n    offer:")],
    ids=["callback-5/visit"],
)
async def test_a_callback_gms_took_starts_its_cool_down(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    page, ids = await shopper(browser, engine)
    await invited(page)
    await expect(await ask_callback(page, "+33 1 23 45 67 89")).to_contain_text(CONFIRMED)
    taken = await attempt_in(api, ids["visitID"], "completed")  # GMS took it
    assert taken["handoff"]["gmsID"] == "gms-1"

    await page.locator(EXPENSIVE).dispatch_event("click")  # the same cart, once more
    visit = await wait_for_visit(api, ids["visitID"], lambda v: bool(v["heldBack"]))
    assert [(h["strategy"], h["reason"]) for h in visit["heldBack"]] == [
        ("big-cart-callback", "limit cooldown_after_callback")
    ]
    assert [a["attemptID"] for a in visit["attempts"]] == [taken["attemptID"]]


@pytest.mark.parametrize("strategies", [CALLBACK], ids=["callback"])
async def test_callback_asked_while_gms_is_down_is_delivered_after_recovery(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    double = gms[0]
    double.mode = "down"
    page, ids = await shopper(browser, engine)
    dialog = await invited(page)
    await ask_callback(page, "+33 1 23 45 67 89")
    await expect(dialog).to_contain_text(CONFIRMED)  # stored first: the visitor is answered

    async def refused() -> None:
        assert double.requests, "GMS got nothing yet"

    await eventually(refused)
    waiting = await attempt_in(api, ids["visitID"], "accepted")
    assert "gmsID" not in waiting["handoff"]
    double.mode = "up"

    async def delivered() -> None:
        assert [r for r in double.requests if r["mode"] == "up"], double.requests

    await eventually(delivered, timeout_s=20)
    attempt = await attempt_in(api, ids["visitID"], "completed")
    ups = [r for r in double.requests if r["mode"] == "up"]
    assert len(ups) == 1
    assert {r["form"]["_engagement_request_id"] for r in double.requests} == {
        attempt["handoff"]["requestID"]
    }
    assert attempt["handoff"]["gmsID"] == f"gms-{len(double.requests)}"


@pytest.mark.parametrize("overrides", [{"callback_limit_per_number": "1/hour"}], ids=["1/h"])
@pytest.mark.parametrize("strategies", [CALLBACK], ids=["callback"])
async def test_callbacks_beyond_the_limit_are_refused_in_the_invitation(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    first, _ = await shopper(browser, engine)
    await invited(first)
    await expect(await ask_callback(first, "+33 1 23 45 67 89")).to_contain_text(CONFIRMED)
    page, ids = await shopper(browser, engine)  # another visitor, the same number
    dialog = await invited(page)

    async with page.expect_response("**/callbacks") as answer:
        await ask_callback(page, "+33 1 23 45 67 89")

    assert (await answer.value).status == 429
    await expect(dialog.locator("[data-eng-error]")).to_have_text(THROTTLED)
    await expect(dialog.locator("input[name=_customer_number]")).to_be_visible()
    await ask_callback(page, "+33 9 87 65 43 21")  # another number goes through
    await expect(dialog).to_contain_text(CONFIRMED)
    await attempt_in(api, ids["visitID"], "completed")  # GMS took it
    assert [r["form"]["_customer_number"] for r in gms[0].requests] == [
        "+33123456789",
        "+33987654321",
    ]


@pytest.mark.parametrize("strategies", [CALLBACK], ids=["callback"])
async def test_callback_refused_by_gms_is_failed_and_shown_in_the_console(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    gms[0].mode = "reject"
    page, ids = await shopper(browser, engine)
    await invited(page)
    # (What the visitor then sees races with the refusal: see the test below.)
    async with page.expect_response("**/callbacks") as answer:
        await ask_callback(page, "+33 1 23 45 67 89")
    assert (await answer.value).status == 202  # stored: GMS is asked behind the answer

    attempt = await attempt_in(api, ids["visitID"], "failed")
    reason = 'GMS answered 400: {"message": "Invalid _desired_time"}'
    assert attempt["transitions"][-1]["reason"] == reason
    assert len(gms[0].requests) == 1  # a 400 is not retried

    agent = await (await browser.new_context()).new_page()
    await agent.goto(engine_url(engine, "console-login"))
    await agent.fill("#key", API_KEY)
    await agent.get_by_role("button", name="Sign in").click()
    await agent.wait_for_url(engine_url(engine, "console-visitors"))
    await agent.goto(engine_url(engine, "console-visit", visitID=ids["visitID"]))
    row = agent.locator(".attempt tbody tr").last
    await expect(row).to_contain_text("failed")
    await expect(row).to_contain_text(reason)


@pytest.mark.parametrize("strategies", [CALLBACK], ids=["callback"])
async def test_refusal_reaching_the_page_before_the_answer_still_shows_the_answer(
    engine: TestServer, api: Api, browser: Browser, gms: tuple[GMSDouble, TestServer]
):
    gms[0].mode = "reject"
    page, ids = await shopper(browser, engine)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    release = asyncio.Event()

    async def hold(route: Route) -> None:  # the engine answers; the page gets it when released
        response = await route.fetch()
        await release.wait()
        await route.fulfill(response=response)

    await page.route("**/callbacks", hold)
    await invited(page)
    try:
        await ask_callback(page, "+33 1 23 45 67 89")
        attempt = await attempt_in(api, ids["visitID"], "failed")

        async def closed_in_the_page() -> None:  # gpe.closeInvite handled: marked answered
            answered = await page.evaluate(
                "() => JSON.parse(localStorage.getItem('_eng_answered') || '[]')"
            )
            assert attempt["attemptID"] in answered, answered

        await eventually(closed_in_the_page)
    finally:
        release.set()
    await expect(page.locator(INVITATION)).to_contain_text(CONFIRMED)
    assert errors == []


@pytest.mark.parametrize(("strategies", "demo_gms"), [(CALLBACK, True)], ids=["demo-gms"])
async def test_demo_without_configuration_uses_the_builtin_demo_gms(
    engine: TestServer,
    api: Api,
    browser: Browser,
    engine_settings: Settings,
    gms: tuple[GMSDouble, TestServer],
):
    assert engine_settings.gms_url is None
    assert engine.port == engine_settings.port
    page, ids = await shopper(browser, engine)
    dialog = await invited(page)
    await ask_callback(page, "+33 1 23 45 67 89")
    await expect(dialog).to_contain_text(CONFIRMED)

    async def listed() -> list[dict[str, Any]]:
        r = await api.get(url(api, "demo-gms-requests"))
        assert r.status == 200, await r.text()
        requests: list[dict[str, Any]] = (await r.json())["requests"]
        assert requests, "the demo GMS got nothing yet"
        return requests

    (received,) = await eventually(listed)
    assert (received["kind"], received["service"]) == ("callback", "sales-cb")
    form = received["form"]
    assert (form["visitID"], form["pageID"], form["webengagement"]) == (
        ids["visitID"],
        ids["pageID"],
        "",
    )
    assert form["_customer_number"] == "+33123456789"
    attempt = await attempt_in(api, ids["visitID"], "completed")
    assert attempt["handoff"]["gmsID"] == received["_id"]
    assert gms[0].requests == []  # the double is not configured here

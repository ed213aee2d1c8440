"""What an accepted chat carries, in real headless Chromium: the fields of the visit listed in
settings user_data, the Widgets registration form prefilled; and a GMS chat created through
request-chat, continued on the chat page the demo serves, ended there."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from engagement.settings import UserData

from . import test_handoff as handoff
from .conftest import Api, engine_url, url, wait_for_visit
from .test_handoff import RECORD_OPENS, attempt_in, invited, shopper, states

pytestmark = pytest.mark.browser

strategies = handoff.strategies
overrides = handoff.overrides
demo_gms = handoff.demo_gms
gms = handoff.gms
engine_settings = handoff.engine_settings
engine = handoff.engine

USER_INFO = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "tier": "gold"}
ATTACH = {"user_data": UserData(attach=["UserInfo.tier", "VisitStarted.timezoneOffset"])}
SCENARIO = handoff.CHAT.replace("params: {", "params: {gmsScenario: SALES-CHAT, ")


@pytest.mark.parametrize("overrides", [ATTACH], ids=["attach"])
async def test_chat_opens_with_the_listed_fields_and_a_prefilled_form(
    engine: TestServer, api: Api, browser: Browser
):
    page, ids = await shopper(browser, engine)
    await page.evaluate("d => _gt.push(['event', 'UserInfo', {data: d}])", USER_INFO)
    await wait_for_visit(api, ids["visitID"], lambda v: v["identity"] == "recognized")
    await page.evaluate(RECORD_OPENS)
    dialog = await invited(page)
    await dialog.locator("[data-eng-action=accept]").click()
    await attempt_in(api, ids["visitID"], "launched")

    offset = await page.evaluate("() => String(new Date().getTimezoneOffset())")
    assert await page.evaluate("() => window.__webchatOpens") == [
        {
            "userData": {
                "queue": "sales",
                "tier": "gold",
                "timezoneOffset": offset,
                "visitID": ids["visitID"],
                "pageID": ids["pageID"],
                "webengagement": "",
            },
            "form": {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"},
        }
    ]


@pytest.mark.parametrize(
    ("overrides", "demo_gms", "strategies"),
    [({"gms_chat": True}, True, SCENARIO)],
    ids=["gms-chat-demo"],
)
async def test_gms_chat_continues_on_the_demo_chat_page_and_ends_there(
    engine: TestServer, api: Api, browser: Browser
):
    context = await browser.new_context(locale="en-US")
    await context.route("**/demo/widgets-stub.js", lambda route: route.abort())  # no Widgets
    page = await context.new_page()
    await page.goto(engine_url(engine, "demo", filename="products.html"))
    ids: dict[str, str] = await page.evaluate(
        "() => new Promise(resolve => window._gt.push(['getIDs', resolve]))"
    )
    dialog = await invited(page)
    async with page.expect_popup() as popup:
        await dialog.locator("[data-eng-action=accept]").click()
    chat = await popup.value
    await expect(chat.locator("#chat-status")).to_have_text("Connected: an agent will answer here.")
    attempt = await attempt_in(api, ids["visitID"], "launched")
    gms_id = attempt["handoff"]["gmsID"]
    # The chat page's query, as GWE's GMS chat widget page got it (and attemptID, chatURL).
    query = {k: v for k, (v,) in parse_qs(urlsplit(chat.url).query).items()}
    assert query == {
        "visitID": ids["visitID"],
        "pageID": ids["pageID"],
        "gmsScenario": "SALES-CHAT",
        "attemptID": attempt["attemptID"],
        "chatURL": engine_url(engine, "demo-gms-chat-create", id=gms_id),  # GMS's REST URL
    }

    await chat.click("#chat-end")
    await expect(chat.locator("#chat-status")).to_have_text("Chat ended.")
    ended = await attempt_in(api, ids["visitID"], "completed")
    assert states(ended)[-3:] == ["accepted", "launched", "completed"]
    r = await api.get(url(api, "demo-gms-requests"))
    received: list[dict[str, Any]] = (await r.json())["requests"]
    assert [(q["kind"], q["_id"]) for q in received] == [
        ("chat-disconnect", gms_id),
        ("chat-create", gms_id),
        ("chat", gms_id),
    ]
    assert received[1]["form"] == {"subject": "SALES-CHAT"}  # the chat page started it
    assert received[2]["form"] == {
        "visitID": ids["visitID"],
        "pageID": ids["pageID"],
        "webengagement": "",
    }
    assert chat.url.startswith(f"http://127.0.0.1:{engine.port}/demo/chat.html?")

"""Invitations and notifications in real headless Chromium: a strategy or an outside system
reaches the page, the visitor answers, and the attempt's history follows."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Locator, Page, Route, ViewportSize, expect
from playwright.async_api import Error as PlaywrightError

from engagement.api.state import HUB
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import (
    API_KEY,
    Api,
    Visit,
    engine_url,
    event_names,
    get_ids,
    page_ids,
    url,
    wait_for_visit,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
STRATEGIES = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    limits: {per_visit: 5, cooldown_after_decline_s: 3600}
    offer: {invite: chat.html, media: chat}
"""
TITLE = "Can we help?"  # invites/strings.yaml, English
TEXT = "An advisor is available to answer your questions right now."
HOST = ".eng-invite-host"
ACCEPT = "[data-eng-action=accept]"
DECLINE = "[data-eng-action=decline]"
BIG = ".add-to-cart[data-price='1199']"
ALSO_BIG = ".add-to-cart[data-price='649']"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    folder = engine_settings.strategies_dir
    folder.mkdir(parents=True)
    (folder / "invitations.yaml").write_text(STRATEGIES)
    return engine_settings.model_copy(update={"invites_dir": ROOT / "invites"})


# ---- helpers ---------------------------------------------------------------------------------


def demo(engine: TestServer, page: str = "") -> str:
    if not page:
        return engine_url(engine, "demo-index")
    return engine_url(engine, "demo", filename=page)


def states(visit: Visit) -> list[str]:
    return [a["state"] for a in visit["attempts"]]


def transitions(attempt: dict[str, Any]) -> list[str]:
    return [t["state"] for t in attempt["transitions"]]


def has_transition(state: str) -> Callable[[Visit], bool]:
    """``until`` for wait_for_visit: the visit's only attempt went through ``state``."""
    return lambda v: len(v["attempts"]) == 1 and state in transitions(v["attempts"][0])


def dialog_of(page: Page) -> Locator:
    return page.locator(HOST).get_by_role("dialog", name=TITLE)


async def live_ids(api: Api, page: Page) -> dict[str, str]:
    """The page's IDs, once the engine has its visit live and this page entered."""
    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: v["live"] and ids["pageID"] in page_ids(v))
    return ids


async def engage(api: Api, visit_id: str) -> dict[str, Any]:
    body = {"ixnProfile": {"visitID": visit_id, "invite": "chat.html", "media": "chat"}}
    r = await api.post(url(api, "engage"), json=body)
    assert r.status == 200, await r.text()
    answer: dict[str, Any] = await r.json()
    return answer


async def collect(page: Page, name: str, into: str) -> None:
    """Subscribe on the tracker's bus; the names (or data) published go to ``window[into]``."""
    await page.evaluate(
        """([name, into]) => new Promise(resolve => {
            window[into] = [];
            window._gt.push(['subscribe', name, (data, n) => window[into].push(n)]);
            window._gt.push(['getIDs', resolve]);
        })""",
        [name, into],
    )


# ---- tests -----------------------------------------------------------------------------------


async def test_strategy_fires_and_the_invitation_appears(
    engine: TestServer, api: Api, browser: Browser
):
    page = await (await browser.new_context()).new_page()
    await page.goto(demo(engine, "products.html"))
    ids = await live_ids(api, page)
    await page.click(BIG)

    dialog = dialog_of(page)
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("heading", name=TITLE)).to_be_visible()
    await expect(dialog).to_contain_text(TEXT)
    accept = dialog.locator(ACCEPT)
    await expect(accept).to_have_text("Chat now")
    await expect(dialog.locator(DECLINE)).to_have_text("No, thanks")
    await expect(accept).to_be_focused()  # autofocus: the keyboard starts inside the dialog
    assert await dialog.evaluate("d => d.contains(document.activeElement)")

    visit = await wait_for_visit(api, ids["visitID"], lambda v: states(v) == ["shown"])
    (attempt,) = visit["attempts"]
    assert attempt["strategy"] == "big-cart"
    assert attempt["media"] == "chat"
    assert transitions(attempt) == ["detected", "offered", "shown"]
    await expect(page.locator(HOST)).to_have_attribute("data-eng-attempt", attempt["attemptID"])


async def test_decline_hides_it_and_starts_the_cool_down(
    engine: TestServer, api: Api, browser: Browser
):
    page = await (await browser.new_context()).new_page()
    await page.goto(demo(engine, "products.html"))
    ids = await live_ids(api, page)
    await page.click(BIG)
    dialog = dialog_of(page)
    await expect(dialog).to_be_visible()

    await dialog.locator(DECLINE).click()
    await expect(page.locator(HOST)).to_have_count(0)
    visit = await wait_for_visit(api, ids["visitID"], lambda v: states(v) == ["declined"])
    assert transitions(visit["attempts"][0]) == ["detected", "offered", "shown", "declined"]

    # Another big cart during the cool-down: the engine takes the event, and invites no one.
    await page.click(ALSO_BIG)
    visit = await wait_for_visit(
        api, ids["visitID"], lambda v: event_names(v).count("AddToCart") == 2
    )
    assert states(visit) == ["declined"]
    await expect(page.locator(HOST)).to_have_count(0)


async def test_two_tabs_show_it_once_and_both_drop_it_when_answered(
    engine: TestServer, api: Api, browser: Browser
):
    context = await browser.new_context()
    first = await context.new_page()
    await first.goto(demo(engine, "products.html"))
    first_ids = await live_ids(api, first)
    second = await context.new_page()
    await second.goto(demo(engine, "pricing.html"))
    second_ids = await live_ids(api, second)
    assert first_ids["visitID"] == second_ids["visitID"]
    visit_id = first_ids["visitID"]
    tabs = (first, second)

    # Headless Chromium tells every tab it has the focus; turned off, bringing a tab to the
    # front moves the real window focus (blur in one tab, focus in the other) as on a desktop.
    for tab in tabs:
        cdp = await context.new_cdp_session(tab)
        await cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    # The visitor goes back to the first tab: it is the one that should show the invitation
    # (the second, loaded last, held the focus key until now).
    await first.bring_to_front()
    await first.wait_for_function(
        "id => localStorage.getItem('_eng_focus') === id", arg=first_ids["pageID"]
    )
    for tab in tabs:
        await collect(tab, "Invitation.invited", "__invited")

    attempt_id = (await engage(api, visit_id))["attemptID"]
    await expect(dialog_of(first)).to_be_visible()
    await wait_for_visit(api, visit_id, has_transition("shown"))
    for tab in tabs:  # both tabs handled the message: only one shows it
        await tab.wait_for_function("() => window.__invited.length === 1")
    assert [await tab.locator(HOST).count() for tab in tabs] == [1, 0]

    await first.locator(ACCEPT).click()
    for tab in tabs:
        await expect(tab.locator(HOST)).to_have_count(0)
    visit = await wait_for_visit(api, visit_id, has_transition("accepted"))
    (attempt,) = visit["attempts"]
    assert attempt["attemptID"] == attempt_id
    assert transitions(attempt).count("shown") == 1
    assert transitions(attempt)[:4] == ["detected", "offered", "shown", "accepted"]
    for tab in tabs:
        assert await tab.locator(HOST).count() == 0


@pytest.mark.parametrize(
    "moment",
    [
        "before-it-arrives",
        "while-its-script-loads",
        "while-its-html-loads",
        "after-it-is-shown",
    ],
)
async def test_reload_while_the_invitation_is_in_flight_shows_it_once(
    engine: TestServer, api: Api, browser: Browser, moment: str
):
    """The engage call and the reload run concurrently; each case pins down one moment of the
    race (holding a request of the page until then), so that each run takes the same path."""
    page = await (await browser.new_context()).new_page()
    await page.goto(demo(engine, "products.html"))
    visit_id = (await live_ids(api, page))["visitID"]
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Route) -> None:
        if held.is_set():  # the reloaded page's request: no waiting
            await route.continue_()
            return
        held.set()
        await release.wait()
        with contextlib.suppress(PlaywrightError):  # the reload may have cancelled it
            await route.continue_()

    async def reload_once(ready: Awaitable[Any]) -> Any:
        await ready
        try:
            return await page.reload()
        finally:
            release.set()

    async def engage_once_held() -> dict[str, Any]:
        await asyncio.wait_for(held.wait(), 10)
        try:
            return await engage(api, visit_id)
        finally:
            release.set()

    if moment == "before-it-arrives":  # the old page is gone, the new one not connected yet
        await page.route(lambda url: "/notifications/stream" in url, hold)
        answer, _ = await asyncio.gather(engage_once_held(), page.reload())
    elif moment == "while-its-script-loads":  # the page got the message, engage.js not yet
        await page.route(lambda url: "/engage.js" in url, hold)
        answer, _ = await asyncio.gather(
            engage(api, visit_id), reload_once(asyncio.wait_for(held.wait(), 10))
        )
    elif moment == "while-its-html-loads":  # the page got the message and fetches the dialog
        await page.route(lambda url: "/invites/" in url, hold)
        answer, _ = await asyncio.gather(
            engage(api, visit_id), reload_once(asyncio.wait_for(held.wait(), 10))
        )
    else:
        shown = expect(dialog_of(page)).to_be_visible()
        answer, _ = await asyncio.gather(engage(api, visit_id), reload_once(shown))

    visit = await wait_for_visit(api, visit_id, lambda v: states(v) not in ([], ["offered"]))
    (attempt,) = visit["attempts"]
    assert attempt["attemptID"] == answer["attemptID"]
    assert transitions(attempt) == ["detected", "offered", "shown"]
    await expect(dialog_of(page)).to_be_visible()
    await expect(page.locator(HOST)).to_have_count(1)
    await expect(page.locator(HOST)).to_have_attribute("data-eng-attempt", answer["attemptID"])


async def test_gwe_notify_appends_content_also_with_the_documented_curl(
    engine: TestServer, api: Api, browser: Browser
):
    page = await (await browser.new_context()).new_page()
    await page.goto(demo(engine))
    ids = await live_ids(api, page)
    notify = url(api, "notify", visitID=ids["visitID"])
    body = [
        {
            "page": ids["pageID"],
            "channel": "gpe.appendContent",
            "data": {"url": demo(engine, "offer.html"), "method": "GET", "container": "body"},
        }
    ]

    r = await api.post(notify, json=body)
    assert r.status == 200, await r.text()
    await expect(page.locator("#demo-offer")).to_be_visible()
    await expect(page.locator("#demo-offer")).to_contain_text("Free delivery today")

    # README's curl command, as written (with this engine's port and key).
    curl = await asyncio.create_subprocess_exec(
        *("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"),
        *("-H", "Content-Type: application/json", "-H", f"X-API-Key: {API_KEY}"),
        *("-d", json.dumps(body), str(engine.make_url(notify))),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await curl.communicate()
    assert (curl.returncode, out, err) == (0, b"200", b"")
    await expect(page.locator("[data-eng-content] #demo-offer")).to_have_count(2)


async def test_content_from_a_foreign_origin_is_refused(
    engine: TestServer, api: Api, browser: Browser
):
    page = await (await browser.new_context()).new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(demo(engine))
    ids = await live_ids(api, page)
    foreign = "http://evil.example/x.html"

    # (a) the REST edge refuses it
    r = await api.post(
        url(api, "notify", visitID=ids["visitID"]),
        json=[{"page": ids["pageID"], "channel": "gpe.appendContent", "data": {"url": foreign}}],
    )
    assert r.status == 400
    assert (await r.json())["details"] == [{"field": "0.data.url", "message": "origin not allowed"}]

    # (b) a message that gets past the edge anyway: the tracker refuses it too
    await page.evaluate(
        """() => new Promise(resolve => {
            window._gt.push(['subscribe', 'Content.refused', data => { window.__refused = data; }]);
            window._gt.push(['getIDs', resolve]);
        })"""
    )
    engine.app[HUB].publish(ids["visitID"], None, "gpe.appendContent", {"url": foreign}, now_ms())
    refused = await page.wait_for_function("() => window.__refused")
    assert await refused.json_value() == {"url": foreign}
    assert await page.locator("[data-eng-content]").count() == 0
    assert [u for u in requested if "evil.example" in u] == []


async def test_site_subscriber_sees_the_invitation_lifecycle(
    engine: TestServer, api: Api, browser: Browser
):
    page = await (await browser.new_context()).new_page()
    await page.goto(demo(engine, "products.html"))
    ids = await live_ids(api, page)
    await collect(page, "*", "__names")

    await page.click(BIG)
    await expect(dialog_of(page)).to_be_visible()
    await dialog_of(page).locator(ACCEPT).click()
    await page.wait_for_function("() => window.__names.includes('Invitation.accepted')")
    names = await page.evaluate("() => window.__names")
    lifecycle = [n for n in names if n.startswith("Invitation.")]
    assert lifecycle[:3] == ["Invitation.invited", "Invitation.shown", "Invitation.accepted"]
    await wait_for_visit(api, ids["visitID"], has_transition("accepted"))


async def test_invitation_fits_a_phone(engine: TestServer, api: Api, browser: Browser):
    viewport: ViewportSize = {"width": 375, "height": 667}
    page = await (await browser.new_context(viewport=viewport)).new_page()
    await page.goto(demo(engine, "products.html"))
    ids = await live_ids(api, page)
    await page.click(BIG)
    dialog = dialog_of(page)
    await expect(dialog).to_be_visible()
    await dialog.evaluate("d => Promise.all(d.getAnimations().map(a => a.finished))")

    for element in (dialog, dialog.locator(ACCEPT), dialog.locator(DECLINE)):
        box = await element.bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["y"] >= 0, box
        assert box["x"] + box["width"] <= viewport["width"], box
        assert box["y"] + box["height"] <= viewport["height"], box
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "invite-phone.png")
    await wait_for_visit(api, ids["visitID"], lambda v: states(v) == ["shown"])

"""The tracker in real headless Chromium, on the demo site, checked through the history API."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Request, Route

from .conftest import (
    Api,
    Launch,
    engine_url,
    event_names,
    eventually,
    get_ids,
    page_ids,
    wait_for_visit,
)

pytestmark = pytest.mark.browser

HEX32 = "[0-9A-F]{32}"


def outage_numbers(batch: list[dict[str, Any]]) -> list[int]:
    return [e["data"]["n"] for e in batch if e["eventName"] == "Outage"]


def without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in keys}


async def test_visit_pages_and_business_event_are_recorded(
    browser: Browser, engine: TestServer, api: Api
):
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []  # what a new user would see in the console: a 404, a CSP refusal
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    home_url, products_url = (
        engine_url(engine, "demo-index"),
        engine_url(engine, "demo", filename="products.html"),
    )

    await page.goto(home_url)
    home = await get_ids(page)
    await page.click("#to-products")
    await page.wait_for_url(products_url)
    await page.locator(".add-to-cart").first.click()
    products = await get_ids(page)

    assert products["visitID"] == home["visitID"]
    assert products["globalVisitID"] == home["globalVisitID"]
    assert products["pageID"] != home["pageID"]
    visit = await wait_for_visit(
        api, home["visitID"], lambda v: {"AddToCart", "PageExited"} <= set(event_names(v))
    )
    assert visit["visitID"] == home["visitID"]
    assert visit["globalVisitID"] == home["globalVisitID"]
    assert [(p["pageID"], p["url"], p["title"]) for p in visit["pages"]] == [
        (home["pageID"], home_url, "Home · Demo Shop"),
        (products["pageID"], products_url, "Products · Demo Shop"),
    ]
    assert visit["pages"][0]["exitedAt"] is not None
    assert [e["pageID"] for e in visit["events"] if e["eventName"] == "PageExited"] == [
        home["pageID"]
    ]
    [started] = [e for e in visit["events"] if e["eventName"] == "VisitStarted"]
    assert started["pageID"] == home["pageID"]
    assert visit["returning"] is False
    assert visit["userAgent"] == await page.evaluate("navigator.userAgent")
    [cart] = [e for e in visit["events"] if e["eventName"] == "AddToCart"]
    assert without(cart, "eventID", "timestamp", "serverTime", "languageCode") == {
        "eventType": "BUSINESS",
        "eventName": "AddToCart",
        "pageID": products["pageID"],
        "visitID": home["visitID"],
        "globalVisitID": home["globalVisitID"],
        "url": products_url,
        "category": "",
        "data": {"sku": "FB13", "price": 649, "currency": "EUR"},
    }
    assert re.fullmatch(HEX32, cart["eventID"])
    assert errors == []


async def test_subdomains_share_one_visit(launch_browser: Launch, engine: TestServer, api: Api):
    browser = await launch_browser("--host-resolver-rules=MAP *.shop.test 127.0.0.1")
    context = await browser.new_context()
    page = await context.new_page()
    www_url = f"http://www.shop.test:{engine.port}/demo/"
    store_url = f"http://store.shop.test:{engine.port}/demo/products.html"

    await page.goto(www_url)
    www = await get_ids(page)
    await page.goto(store_url)
    store = await get_ids(page)

    assert store["visitID"] == www["visitID"]
    assert store["globalVisitID"] == www["globalVisitID"]
    visit = await wait_for_visit(api, www["visitID"], lambda v: store["pageID"] in page_ids(v))
    assert [(p["pageID"], p["url"]) for p in visit["pages"]] == [
        (www["pageID"], www_url),
        (store["pageID"], store_url),
    ]
    cookies = await context.cookies()
    assert {c["name"]: c["domain"] for c in cookies} == {
        "_eng_visit": ".shop.test",
        "_eng_gvid": ".shop.test",
    }


async def test_localhost_cookie_is_host_only_and_holds_no_personal_data(
    browser: Browser, engine: TestServer, api: Api
):
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(engine_url(engine, "demo-index"))
    ids = await get_ids(page)
    await page.click("#sign-in")

    # The SignIn event and the visit row's identity reach the history in the same or the next
    # batch: wait for the identity, then check the event is there too.
    visit = await wait_for_visit(api, ids["visitID"], lambda v: v["identity"] == "authenticated")
    assert "SignIn" in event_names(visit)
    assert visit["userInfo"] == {"customerID": "DEMO-42"}
    cookies = await context.cookies()
    # host-only (no parent domain on an IP address); the visit cookie lasts the session
    assert {c["name"]: (c["domain"], c["path"], c["expires"] == -1) for c in cookies} == {
        "_eng_visit": ("127.0.0.1", "/", True),
        "_eng_gvid": ("127.0.0.1", "/", False),
    }
    values = {c["name"]: c["value"] for c in cookies}
    assert re.fullmatch(rf"{ids['visitID']}\.\d+", values["_eng_visit"]), values
    assert values["_eng_gvid"] == ids["globalVisitID"]


async def test_single_page_app_navigation_makes_new_pages(
    browser: Browser, engine: TestServer, api: Api
):
    context = await browser.new_context()
    page = await context.new_page()
    cart_url = engine_url(engine, "demo", filename="cart.html")
    shipping_url, payment_url = f"{cart_url}?step=shipping", f"{cart_url}?step=payment"

    await page.goto(cart_url)
    ids = await get_ids(page)
    await page.click("[data-step=shipping]")
    await page.wait_for_url(shipping_url)
    await page.click("[data-step=payment]")
    await page.wait_for_url(payment_url)

    visit = await wait_for_visit(
        api, ids["visitID"], lambda v: payment_url in [p["url"] for p in v["pages"]]
    )
    assert [(p["url"], p["title"], p["referrer"]) for p in visit["pages"]] == [
        (cart_url, "Cart · Demo Shop", ""),
        (shipping_url, "Cart: shipping · Demo Shop", cart_url),
        (payment_url, "Cart: payment · Demo Shop", shipping_url),
    ]
    assert visit["pages"][0]["pageID"] == ids["pageID"]
    assert [p["exitedAt"] is not None for p in visit["pages"]] == [True, True, False]

    await page.go_back()
    await page.wait_for_url(shipping_url)
    back = await get_ids(page)

    visit = await wait_for_visit(api, ids["visitID"], lambda v: back["pageID"] in page_ids(v))
    # the demo app does not restore its title on popstate: the new page gets the current one
    assert [(p["url"], p["title"], p["referrer"]) for p in visit["pages"]] == [
        (cart_url, "Cart · Demo Shop", ""),
        (shipping_url, "Cart: shipping · Demo Shop", cart_url),
        (payment_url, "Cart: payment · Demo Shop", shipping_url),
        (shipping_url, await page.title(), payment_url),
    ]
    assert visit["pages"][3]["pageID"] == back["pageID"]
    assert back["visitID"] == ids["visitID"]


async def test_events_survive_a_short_engine_outage(browser: Browser, engine: TestServer, api: Api):
    context = await browser.new_context()
    page = await context.new_page()
    refused: list[list[dict[str, Any]]] = []  # the event batches the "down" engine refused

    async def engine_down(route: Route, request: Request) -> None:
        refused.append(json.loads(request.post_data or "{}").get("events", []))
        await route.fulfill(status=503, content_type="application/json", body='{"error": "down"}')

    await page.goto(engine_url(engine, "demo-index"))
    first = await get_ids(page)
    await wait_for_visit(api, first["visitID"], lambda v: first["pageID"] in page_ids(v))

    # The engine becomes unreachable: the browser's requests to it get 503 (the engine is real,
    # only the network path to it fails).
    await page.route("**/monitoring/events", engine_down)
    await page.evaluate(
        """() => [1, 2, 3].forEach(n =>
            window._gt.push(['event', 'Outage', {data: {n: n}}]))"""
    )

    async def refused_on_first_page() -> None:
        assert any(outage_numbers(b) == [1, 2, 3] for b in refused), refused

    await eventually(refused_on_first_page)

    # Still down, the visitor goes to another page: it takes over the events left behind.
    await page.click("#to-products")
    await page.wait_for_url(engine_url(engine, "demo", filename="products.html"))
    second = await get_ids(page)

    async def refused_on_second_page() -> None:
        assert any(
            outage_numbers(b) == [1, 2, 3] and second["pageID"] in {e["pageID"] for e in b}
            for b in refused
        ), refused

    await eventually(refused_on_second_page)

    # The engine is back: the tracker's retry (backoff 1 s, 2 s, ...) delivers everything.
    await page.unroute("**/monitoring/events", engine_down)
    visit = await wait_for_visit(
        api,
        first["visitID"],
        lambda v: event_names(v).count("Outage") == 3 and second["pageID"] in page_ids(v),
    )
    outage = [e for e in visit["events"] if e["eventName"] == "Outage"]
    assert [without(e, "eventID", "timestamp", "serverTime", "languageCode") for e in outage] == [
        {
            "eventType": "BUSINESS",
            "eventName": "Outage",
            "pageID": first["pageID"],
            "visitID": first["visitID"],
            "globalVisitID": first["globalVisitID"],
            "url": engine_url(engine, "demo-index"),
            "category": "",
            "data": {"n": n},
        }
        for n in [1, 2, 3]
    ]
    assert page_ids(visit) == [first["pageID"], second["pageID"]]
    [exited] = [e for e in visit["events"] if e["eventName"] == "PageExited"]
    assert exited["pageID"] == first["pageID"]
    event_ids = [e["eventID"] for e in visit["events"]]
    assert len(event_ids) == len(set(event_ids))
    sent_ids = {e["eventID"] for batch in refused for e in batch}
    assert sent_ids <= set(event_ids)  # nothing the engine missed while down is lost


async def test_tracker_is_small(browser: Browser, engine: TestServer):
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        r = await http.get(engine_url(engine, "tracker"), headers={"Accept-Encoding": "gzip"})
        assert r.status == 200, await r.text()
        gzipped = await r.read()
        assert r.headers["Content-Encoding"] == "gzip"
        assert len(gzipped) < 8192
        assert b"_gt" in gzip.decompress(gzipped)

        etag = r.headers["ETag"]
        r = await http.get(
            engine_url(engine, "tracker"),
            headers={"Accept-Encoding": "gzip", "If-None-Match": etag},
        )
        assert r.status == 304, await r.text()
        assert await r.read() == b""

    # ... and that is what the browser downloads with a page
    page = await (await browser.new_context()).new_page()
    await page.goto(engine_url(engine, "demo-index"))
    await get_ids(page)
    [timing] = await page.evaluate(
        """url => performance.getEntriesByName(url).map(
            t => ({encoded: t.encodedBodySize, decoded: t.decodedBodySize}))""",
        engine_url(engine, "tracker"),
    )
    assert 0 < timing["encoded"] < 8192
    assert timing["decoded"] > timing["encoded"]

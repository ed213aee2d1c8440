"""Older GWE sites in real Chromium: the 8.1 command forms, a languageCode option, and a legacy
invite.html widget appended by gpe.appendContent with trusted mode on (its scripts run, under
the page's CSP nonce) and off (sanitized, nothing runs)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from engagement.settings import Settings

from .conftest import Api, event_names, get_ids, page_ids, wait_for_visit

pytestmark = pytest.mark.browser

NONCE = "R4nd0mN0nce"
# A legacy widget as GWE's invite.html did it: markup plus inline and external scripts.
INVITE_HTML = """
<div id="gwe-invite"><button id="gwe-accept">Chat now</button></div>
<script>window.__widget.push('inline');
  document.getElementById('gwe-accept').addEventListener('click', function () {
    _gt.push(['event', 'InviteAccepted', {data: {via: 'widget'}}]); });</script>
<script src="invite.js"></script>
"""
SITE_PAGE = """<!doctype html><html><head><title>Old shop</title>
<script nonce="{nonce}">window.__widget = []; window._gt = window._gt || [];
  _gt.push(['config', {{languageCode: 'fr-CA'}}]);</script>
<script nonce="{nonce}" async src="{engine}/tracker.js"></script></head>
<body><h1>Old shop</h1></body></html>"""


@pytest.fixture
async def legacy_site(aiohttp_server: Any) -> TestServer:
    """A GWE-era site that is also the content origin of its invite.html (CSP with a nonce)."""

    async def page(request: web.Request) -> web.Response:
        html = SITE_PAGE.format(nonce=NONCE, engine=request.query["engine"])
        csp = f"script-src 'nonce-{NONCE}'; object-src 'none'; base-uri 'none'"
        return web.Response(text=html, content_type="text/html",
                            headers={"Content-Security-Policy": csp})  # fmt: skip

    async def invite(request: web.Request) -> web.Response:
        return web.Response(text=INVITE_HTML, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text="window.__widget.push('external');",
                            content_type="application/javascript")  # fmt: skip

    app = web.Application()
    app.router.add_get("/shop.html", page, name="shop")
    app.router.add_get("/gwe/invite.html", invite, name="invite")
    app.router.add_get("/gwe/invite.js", script, name="invite_js")
    server: TestServer = await aiohttp_server(app)
    return server


@pytest.fixture
def trusted() -> bool:
    return False


@pytest.fixture
def engine_settings(engine_settings: Settings, legacy_site: TestServer, trusted: bool) -> Settings:
    origin = f"http://127.0.0.1:{legacy_site.port}"
    return engine_settings.model_copy(
        update={"content_origins": [origin], "trusted_content": trusted}
    )


async def open_site(browser: Browser, site: TestServer, engine: TestServer) -> Any:
    page = await (await browser.new_context()).new_page()
    shop = site.app.router["shop"].url_for().with_query(engine=str(engine.make_url("")).rstrip("/"))
    await page.goto(str(site.make_url(shop)))
    return page


async def test_gwe_81_commands_map_to_system_and_business_events(
    browser: Browser, engine: TestServer, api: Api, legacy_site: TestServer
):
    page = await open_site(browser, legacy_site, engine)
    ids = await get_ids(page)

    await page.evaluate(
        """() => {
          _gt.push(['event', {eventName: 'AddToCart', productName: 'Sony', productPrice: '1000$'}]);
          _gt.push(['event', {eventName: 'Wishlist', data: {sku: 'JVB72'}}]);
          _gt.push(['sendUserInfo', {firstName: 'Ada', tier: 'gold'}]);
          _gt.push(['sendSignIn', {userId: 'ada@example.com'}]);
          _gt.push(['sendSignOut', {}]);
        }"""
    )

    visit = await wait_for_visit(api, ids["visitID"], lambda v: "SignOut" in event_names(v))
    automatic = ("VisitStarted", "PageEntered")
    sent = [(e["eventType"], e["eventName"], e["data"], e["languageCode"])
            for e in visit["events"] if e["eventName"] not in automatic]  # fmt: skip
    assert sent == [
        ("BUSINESS", "AddToCart", {"productName": "Sony", "productPrice": "1000$"}, "fr-CA"),
        ("BUSINESS", "Wishlist", {"sku": "JVB72"}, "fr-CA"),
        ("SYSTEM", "UserInfo", {"firstName": "Ada", "tier": "gold"}, "fr-CA"),
        ("SYSTEM", "SignIn", {"userId": "ada@example.com"}, "fr-CA"),
        ("SYSTEM", "SignOut", {}, "fr-CA"),
    ]
    assert visit["identity"] == "recognized"


async def notify_invite(api: Api, page: Any, site: TestServer) -> None:
    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    await page.evaluate(
        "() => _gt.push(['subscribe', 'Content.appended', d => { window.__appended = d; }])"
    )
    url = str(site.make_url(site.app.router["invite"].url_for()))
    notify = api.app.router["notify"].url_for(visitID=ids["visitID"])
    r = await api.post(notify, json=[{"channel": "gpe.appendContent", "data": {"url": url}}])
    assert r.status == 200, await r.text()
    await page.wait_for_function("() => window.__appended")


@pytest.mark.parametrize("trusted", [True])
async def test_trusted_mode_runs_a_legacy_invite_widget_with_the_nonce(
    browser: Browser, engine: TestServer, api: Api, legacy_site: TestServer
):
    page = await open_site(browser, legacy_site, engine)
    await notify_invite(api, page, legacy_site)

    await page.wait_for_function("() => window.__widget.length === 2")
    assert await page.evaluate("() => window.__widget") == ["inline", "external"]
    await page.click("#gwe-accept")
    ids = await get_ids(page)
    visit = await wait_for_visit(api, ids["visitID"], lambda v: "InviteAccepted" in event_names(v))
    [accepted] = [e for e in visit["events"] if e["eventName"] == "InviteAccepted"]
    assert accepted["data"] == {"via": "widget"}


async def test_trusted_mode_off_appends_the_widget_sanitized(
    browser: Browser, engine: TestServer, api: Api, legacy_site: TestServer
):
    page = await open_site(browser, legacy_site, engine)
    await notify_invite(api, page, legacy_site)

    assert await page.locator("[data-eng-content] #gwe-accept").count() == 1
    assert await page.locator("[data-eng-content] script").count() == 0
    assert await page.evaluate("() => window.__widget") == []

"""Hostile HTML from an allowed content origin, appended by gpe.appendContent in real Chromium:
no inline handler runs, no javascript: or data: URL is left, with the browser's own Sanitizer
(Element.setHTML) and with the tracker's fallback."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from engagement.settings import Settings

from .conftest import Api, engine_url, get_ids, page_ids, wait_for_visit

pytestmark = pytest.mark.browser

HOSTILE = """
<div id="hostile">
  <p id="kept" class="offer" style="color: rgb(255, 0, 0)">Free delivery today</p>
  <a id="ok" href="https://shop.example/offer">See the offer</a>
  <img id="img1" src="missing.png" onerror="window.__pwned.push('img onerror')">
  <img id="img2" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="__pwned.push('load')">
  <a id="a1" href="javascript:window.__pwned.push('a')">a1</a>
  <a id="a2" href=" java&#x09;script:window.__pwned.push('a2')">a2</a>
  <a id="a3" href="data:text/html,<script>alert(1)</script>">a3</a>
  <form id="f1" action="javascript:window.__pwned.push('form')">
    <button id="b1" formaction="javascript:window.__pwned.push('button')">go</button>
  </form>
  <svg><a id="s1" xlink:href="javascript:window.__pwned.push('svg')"><text>t</text></a>
    <animate attributeName="href" to="javascript:window.__pwned.push('animate')"/></svg>
  <script>window.__pwned.push('script')</script>
  <iframe id="fr" src="javascript:parent.__pwned.push('iframe')"></iframe>
  <object data="javascript:window.__pwned.push('object')"></object>
  <embed src="javascript:window.__pwned.push('embed')">
  <template><img src="x" onerror="window.__pwned.push('template')"></template>
  <details open ontoggle="window.__pwned.push('toggle')"><summary>s</summary></details>
  <div onmouseover="window.__pwned.push('hover')" id="hover">hover me</div>
</div>
"""


@pytest.fixture
async def content_origin(aiohttp_server: Any) -> str:
    """A content server the engine allows, serving hostile HTML (CORS for any page)."""

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(
            text=HOSTILE,
            content_type="text/html",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    app = web.Application()
    app.router.add_get("/offer.html", hostile)
    server: TestServer = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def engine_settings(engine_settings: Settings, content_origin: str) -> Settings:
    return engine_settings.model_copy(update={"content_origins": [content_origin]})


@pytest.mark.parametrize("sanitizer", ["setHTML", "fallback"])
async def test_appended_content_runs_nothing(
    engine: TestServer,
    api: Api,
    browser: Browser,
    content_origin: str,
    sanitizer: str,
):
    page = await (await browser.new_context()).new_page()
    await page.add_init_script("window.__pwned = [];")
    if sanitizer == "fallback":
        await page.add_init_script("delete Element.prototype.setHTML;")
    page.on("dialog", lambda dialog: dialog.dismiss())
    await page.goto(engine_url(engine, "demo-index"))
    assert await page.evaluate("() => 'setHTML' in Element.prototype") == (sanitizer == "setHTML")
    ids = await get_ids(page)
    await wait_for_visit(api, ids["visitID"], lambda v: ids["pageID"] in page_ids(v))
    await page.evaluate(
        "() => window._gt.push(['subscribe', 'Content.appended', d => { window.__appended = d; }])"
    )
    notify = api.app.router["notify"].url_for(visitID=ids["visitID"])
    url = f"{content_origin}/offer.html"

    r = await api.post(notify, json=[{"channel": "gpe.appendContent", "data": {"url": url}}])

    assert r.status == 200, await r.text()
    await page.wait_for_function("() => window.__appended")
    box = page.locator("[data-eng-content] #hostile")
    await expect(box.locator("#kept")).to_have_text("Free delivery today")
    await expect(box.locator("#kept")).to_have_attribute("class", "offer")
    await expect(box.locator("#kept")).to_have_css("color", "rgb(255, 0, 0)")
    await expect(box.locator("#ok")).to_have_attribute("href", "https://shop.example/offer")
    # the images' load ended (error or load): a handler left in place would have run by now
    await page.wait_for_function(
        "() => [...document.querySelectorAll('[data-eng-content] img')].every(i => i.complete)"
    )
    for link in ("#a1", "#a2", "#s1"):  # (a form without its action would submit to the page)
        if await box.locator(link).count():
            await box.locator(link).dispatch_event("click")
    await box.locator("#hover").dispatch_event("mouseover")
    leftovers = await page.evaluate(
        """() => {
          const root = document.querySelector('[data-eng-content]');
          const bad = [];
          for (const e of root.querySelectorAll('*')) {
            if (/^(script|iframe|frame|object|embed|template|animate|set)$/i.test(e.localName)) {
              bad.push(e.localName);
            }
            for (const a of e.attributes) {
              const v = a.value.replace(/[\\x00-\\x20]/g, '');
              if (/^on/i.test(a.name) || /^(javascript|data):/i.test(v)) bad.push(a.name);
            }
          }
          return bad;
        }"""
    )
    assert leftovers == []
    assert await page.evaluate("() => window.__pwned") == []
    assert page.url == f"http://127.0.0.1:{engine.port}/demo/"  # no link or form navigated

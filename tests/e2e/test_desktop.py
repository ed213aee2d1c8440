"""The agent's desktop in real Chromium: a CRM page on an allowed origin frames a visit's
signed view; a page on another origin cannot, and neither can frame the console."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Frame, Page

from engagement.settings import Settings

from .conftest import Api, Launch, engine_url, eventually, url

pytestmark = pytest.mark.browser
CRM_HOST = "crm.desk.test"  # mapped to 127.0.0.1 in Chromium
OTHER_HOST = "evil.desk.test"


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(update={"frame_ancestors": [f"http://{CRM_HOST}:*"]})


async def crm_server(aiohttp_server: Any) -> TestServer:
    """A side panel that frames whatever URL it is given in ?src=."""

    async def panel(request: web.Request) -> web.Response:
        src = request.query["src"]
        html = f'<!doctype html><title>CRM</title><iframe id="desk" src="{src}"></iframe>'
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/panel", panel)
    server: TestServer = await aiohttp_server(app)
    return server


async def new_visit(api: Api) -> str:
    visit_id, global_id = "A" * 32, "B" * 32
    body = {"eventType": "SYSTEM", "eventName": "PageEntered", "globalVisitID": global_id,
            "url": "https://shop.example/pricing", "data": {"title": "Pricing plans"}}  # fmt: skip
    r = await api.post(url(api, "gwe-visit-events", visitId=visit_id), json=body)
    assert r.status == 201, await r.text()
    return visit_id


async def framed(page: Page) -> Frame:
    async def loaded() -> Frame:
        frames = [f for f in page.frames if f is not page.main_frame]
        assert frames, "no frame yet"
        return frames[0]

    return await eventually(loaded)


async def frame_text(frame: Frame) -> str:
    try:
        return await frame.inner_text("body")
    except PlaywrightError as exc:  # a blocked frame is an error page Chromium keeps to itself
        return f"<unreadable: {type(exc).__name__}>"


async def test_allowed_crm_frames_the_visit_and_others_cannot(
    launch_browser: Launch, engine: TestServer, api: Api, aiohttp_server: Any
):
    crm = await crm_server(aiohttp_server)
    visit_id = await new_visit(api)
    r = await api.post(url(api, "desktop-link", visitID=visit_id))
    assert r.status == 200, await r.text()
    link = f"http://127.0.0.1:{engine.port}{(await r.json())['url']}"
    browser = await launch_browser("--host-resolver-rules=MAP *.desk.test 127.0.0.1")
    page = await browser.new_page()

    await page.goto(f"http://{CRM_HOST}:{crm.port}/panel?src={link.replace('&', '%26')}")
    frame = await framed(page)

    async def shows_the_visit() -> None:
        assert "Pricing plans" in await frame_text(frame)

    await eventually(shows_the_visit)

    for src in (link, engine_url(engine, "console-visitors")):
        host = OTHER_HOST if src == link else CRM_HOST
        other = await browser.new_page()
        blocked: list[str] = []
        other.on("console", lambda m, seen=blocked: seen.append(m.text))
        await other.goto(f"http://{host}:{crm.port}/panel?src={src.replace('&', '%26')}")

        async def refused(seen: list[str] = blocked) -> None:
            assert any("frame-ancestors" in m or "X-Frame-Options" in m for m in seen), seen

        await eventually(refused)
        frame = await framed(other)
        assert "Pricing plans" not in await frame_text(frame)

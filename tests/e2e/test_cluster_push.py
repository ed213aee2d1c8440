"""Push across nodes in real Chromium: the page's EventSource is held by node A, the
notification is posted to node B (which never saw the visit), on one real Redis and one
PostgreSQL schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from engagement.api.state import HUB
from engagement.app import create_app
from engagement.cluster.push import RedisHub
from engagement.settings import Settings

from ..conftest import url
from .conftest import API_KEY, Api, engine_url, eventually, get_ids

pytestmark = pytest.mark.browser


def node(engine_settings: Settings, name: str, redis_url: str, database_url: str) -> Settings:
    return engine_settings.model_copy(
        update={
            "data_dir": engine_settings.data_dir.parent / name,
            "redis_url": redis_url,
            "database_url": database_url,
        }
    )


@pytest.fixture
async def engine(
    aiohttp_server: Any, engine_settings: Settings, redis_url: str, database_url: str
) -> TestServer:
    """Node A: serves the demo page, its tracker and its push stream."""
    settings = node(engine_settings, "a", redis_url, database_url)
    server: TestServer = await aiohttp_server(create_app(settings))
    return server


@pytest.fixture
async def other(
    aiohttp_client: Any, engine_settings: Settings, redis_url: str, database_url: str
) -> Api:
    """Node B, through its REST API."""
    settings = node(engine_settings, "b", redis_url, database_url)
    client: Api = await aiohttp_client(create_app(settings), headers={"X-API-Key": API_KEY})
    return client


async def test_a_notify_on_node_b_reaches_the_page_streaming_from_node_a(
    engine: TestServer, other: Api, browser: Browser, tmp_path: Path
):
    page = await (await browser.new_context()).new_page()
    await page.goto(engine_url(engine, "demo-index"))
    ids = await get_ids(page)
    await page.evaluate(
        """() => { window.__offers = [];
                   window._gt.push(['subscribe', 'Offer', d => window.__offers.push(d)]); }"""
    )
    hub = engine.app[HUB]
    assert isinstance(hub, RedisHub)

    async def streaming() -> None:
        assert hub.has_stream(ids["visitID"], ids["pageID"])

    await eventually(streaming)
    message = {"channel": "gpe.publish", "data": {"event": "Offer", "data": {"n": 1}}}
    r = await other.post(url(other, "notify", visitID=ids["visitID"]), json=[message])
    assert r.status == 200, await r.text()

    offers = await page.wait_for_function("() => window.__offers.length && window.__offers")
    assert await offers.json_value() == [{"n": 1}]
    assert hub.cross_node_total == 1  # it came from node B through Redis pub/sub

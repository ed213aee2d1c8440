"""The server reads content URLs as a browser does before checking their origin."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.origins import content_url_allowed, url_origin
from engagement.settings import Settings

from .conftest import AUTH, Factory, post_events

Client = TestClient[Any, Any]
CDN = "https://cdn.shop.example"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"content_origins": [CDN]})


HOSTILE = [
    "/\\evil.example/x",
    "\\\\evil.example",
    "//evil.example/x",
    "\\/evil.example/x",
    "ht\ttps://evil.example/x",
    "https://cdn.shop.example\n.evil.example/x",
    "https:evil.example",
    "https://cdn.shop.example@evil.example/x",
    "https://cdn.shop.example%40evil.example/x",
    " \x00https://evil.example/",
    "javascript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<img src=x onerror=alert(1)>",
    "http://cdn.shop.example/x",  # the CDN is allowed on https only
    "https://cdn.shop.example:8443/x",
    "http://[::1",
]


@pytest.mark.parametrize("url", HOSTILE)
async def test_notify_refuses_urls_that_leave_the_allowed_origins(
    client: Client, factory: Factory, url: str
):
    await post_events(client, factory.start())
    notify = client.app.router["notify"].url_for(visitID=factory.visit_id)
    body = [{"channel": "gpe.appendContent", "data": {"url": url}}]

    r = await client.post(notify, json=body, headers=AUTH)

    assert r.status == 400, await r.text()
    assert (await r.json())["details"] == [{"field": "0.data.url", "message": "origin not allowed"}]


ALLOWED = [
    "https://cdn.shop.example/offer.html",
    "HTTPS://CDN.shop.example:443/offer.html",
    "https://cdn.shop.example/a\\b",  # a backslash in the path stays in the path
    "/offers/1.html",
    "offers/1.html",
    "?offer=1",
    "http://shop.example/offer.html",  # an allowed site
]


@pytest.mark.parametrize("url", ALLOWED)
async def test_notify_takes_urls_on_allowed_origins(client: Client, factory: Factory, url: str):
    await post_events(client, factory.start())
    notify = client.app.router["notify"].url_for(visitID=factory.visit_id)
    body = [{"channel": "gpe.appendContent", "data": {"url": url}}]

    r = await client.post(notify, json=body, headers=AUTH)

    assert r.status == 200, await r.text()


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://a.example\\@b.example/", "https://a.example"),
        ("https://u:p@b.example:443/x", "https://b.example"),
        ("  http://B.example:80\t/", "http://b.example"),
        ("javascript:alert(1)", None),
        ("not a url", None),
    ],
)
def test_url_origin_is_the_browsers(url: str, origin: str | None):
    assert url_origin(url) == origin


def test_content_url_relative_to_the_page_stays_on_the_page():
    assert content_url_allowed("/x", [])
    assert not content_url_allowed("//x.example/", [])
    assert not content_url_allowed("https:x.example", ["https://page.invalid"])

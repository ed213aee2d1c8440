"""The agent's desktop (issue 14): a signed, short-lived link opens one visit's history in a
compact view that the configured origins may frame; the rest of the console stays unframeable."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from engagement.app import create_app
from engagement.console import desktop
from engagement.console.desktop import DesktopLinkOut
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events

Client = TestClient[Any, Any]
CRM = "https://crm.example.com"


async def link_for(client: Client, visit_id: str) -> dict[str, Any]:
    target = client.app.router["desktop-link"].url_for(visitID=visit_id)
    r = await client.post(target, headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    DesktopLinkOut.model_validate(body)
    return body  # type: ignore[no-any-return]


async def test_link_opens_the_visit_unframeable_by_default(client: Client, factory: Factory):
    events = factory.start(f"{SITE}/pricing", "Pricing <b>plans</b>")
    events.append(factory.event("AddToCart", {"sku": "WH15"}))
    await post_events(client, events)
    before = now_ms()
    link = await link_for(client, factory.visit_id)
    assert before + 300_000 - 1000 <= link["expiresAt"] <= now_ms() + 300_000

    r = await client.get(link["url"])
    assert r.status == 200, await r.text()
    html = await r.text()
    assert "Pricing &lt;b&gt;plans&lt;/b&gt;" in html  # autoescaped
    assert "AddToCart" in html
    assert factory.visit_id in html
    assert "<script" not in html
    assert r.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    )
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"


async def test_configured_origins_may_frame_it_and_nothing_else(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    settings = settings.model_copy(update={"frame_ancestors": [CRM, "https://*.desk.example"]})
    client = await aiohttp_client(create_app(settings))
    await post_events(client, factory.start())
    r = await client.get((await link_for(client, factory.visit_id))["url"])
    assert r.status == 200, await r.text()
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors https://crm.example.com https://*.desk.example;" in csp
    assert "X-Frame-Options" not in r.headers

    console = client.app.router["console-visit"].url_for(visitID=factory.visit_id)
    r = await client.get(console, headers=AUTH)
    assert r.status == 200, await r.text()
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"


async def test_link_is_for_one_visit_and_cannot_be_forged(client: Client, factory: Factory):
    await post_events(client, factory.start())
    other = Factory()
    await post_events(client, other.start())
    url = (await link_for(client, factory.visit_id))["url"]
    view = client.app.router["desktop-visit"]
    exp, sig = url.split("exp=")[1].split("&sig=")
    cases = [
        (view.url_for(visitID=other.visit_id).with_query(exp=exp, sig=sig), "sig"),
        (view.url_for(visitID=factory.visit_id).with_query(exp=str(int(exp) + 3600), sig=sig),
         "sig"),
        (view.url_for(visitID=factory.visit_id).with_query(exp=exp, sig="0" * 64), "sig"),
    ]  # fmt: skip
    for target, field in cases:
        r = await client.get(target)
        assert r.status == 403, target
        assert (await r.json())["details"] == [{"field": field, "message": "bad"}]
    r = await client.get(view.url_for(visitID=factory.visit_id).with_query(exp=exp))
    assert r.status == 400
    assert [d["field"] for d in (await r.json())["details"]] == ["sig"]


async def test_expired_link_is_refused(
    client: Client, factory: Factory, monkeypatch: pytest.MonkeyPatch
):
    await post_events(client, factory.start())
    url = (await link_for(client, factory.visit_id))["url"]
    later = now_ms() + 301_000
    monkeypatch.setattr(desktop, "now_ms", lambda: later)
    r = await client.get(url)
    assert r.status == 403
    assert (await r.json())["details"] == [{"field": "exp", "message": "expired"}]


async def test_link_needs_a_key_and_a_known_visit(client: Client):
    target = client.app.router["desktop-link"].url_for(visitID=new_id())
    assert (await client.post(target)).status == 401
    r = await client.post(target, headers=AUTH)
    assert r.status == 404
    assert (await r.json())["details"] == [{"field": "visitID", "message": "unknown"}]


async def test_view_shows_the_identity_and_its_visits_on_other_browsers(client: Client):
    laptop, phone = Factory(), Factory()
    for browser in (laptop, phone):
        await post_events(client, browser.start() + [
            browser.event("SignIn", {"identityId": "ada@example.com", "name": "Ada L."})
        ])  # fmt: skip
    r = await client.get((await link_for(client, phone.visit_id))["url"])
    html = await r.text()
    assert "<h1>Ada L.</h1>" in html
    assert "Earlier visits of this identity" in html
    assert html.count("Authenticated") == 2  # this visit's scope, and the laptop's visit


@pytest.mark.parametrize(
    "bad", ["crm.example.com", "https://crm.example.com; script-src *", "https://a b", "'self'"]
)
def test_frame_ancestors_are_plain_origins(bad: str):
    with pytest.raises(ValidationError) as caught:
        Settings(frame_ancestors=[bad])
    assert caught.value.errors()[0]["loc"] == ("frame_ancestors",)

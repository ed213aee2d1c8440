from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from engagement.api.history import LiveVisitsOut, VisitorVisitsOut, VisitOut
from engagement.app import create_app
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events, url

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]


async def test_visit_has_its_pages_and_events(client: Client, factory: Factory):
    first_page = factory.page_id
    events = factory.start()
    events += factory.navigate(f"{SITE}/products", "Products")
    events.append(factory.event("AddToCart", {"sku": "WH15", "price": 1199}))
    await post_events(client, events)

    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    visit = await r.json()
    VisitOut.model_validate(visit)
    assert visit["visitID"] == factory.visit_id
    assert visit["globalVisitID"] == factory.global_visit_id
    assert visit["live"] is True
    assert visit["identity"] == "anonymous"
    assert visit["userAgent"] == "pytest"
    assert visit["timezoneOffset"] == -60
    assert [(p["pageID"], p["url"], p["title"]) for p in visit["pages"]] == [
        (first_page, f"{SITE}/", "Home"),
        (factory.page_id, f"{SITE}/products", "Products"),
    ]
    assert visit["pages"][0]["exitedAt"] is not None
    assert visit["pages"][1]["exitedAt"] is None
    names = [e["eventName"] for e in visit["events"]]
    assert names == ["VisitStarted", "PageEntered", "PageExited", "PageEntered", "AddToCart"]
    cart = visit["events"][-1]
    assert cart["eventType"] == "BUSINESS"
    assert cart["data"] == {"sku": "WH15", "price": 1199}
    assert cart["eventID"] == events[-1]["eventID"]
    assert cart["timestamp"] == events[-1]["timestamp"]
    assert cart["serverTime"] >= visit["startedAt"]


async def test_identity_follows_user_info_sign_in_and_sign_out_recognized(
    client: Client, factory: Factory
):
    await post_events(client, factory.start())
    path = url(client, "visit", visitID=factory.visit_id)
    steps = [
        ("UserInfo", {"firstName": "Ada"}, "recognized"),
        ("SignIn", {"customerID": "C-1"}, "authenticated"),
        ("UserInfo", {"tier": "gold"}, "authenticated"),
        ("SignOut", {}, "recognized"),
    ]
    for name, data, identity in steps:
        await post_events(client, [factory.event(name, data)])
        visit = await (await client.get(path, headers=AUTH)).json()
        assert visit["identity"] == identity, name


async def test_live_visits_lists_current_page_and_times(client: Client, factory: Factory):
    await post_events(client, factory.start() + factory.navigate(f"{SITE}/pricing", "Pricing"))
    other = Factory()
    await post_events(client, other.start())

    r = await client.get(url(client, "live-visits"), headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    LiveVisitsOut.model_validate(body)
    assert body["count"] == 2
    by_id = {v["visitID"]: v for v in body["visits"]}
    mine = by_id[factory.visit_id]
    assert mine["pagesViewed"] == 2
    assert mine["currentPage"]["url"] == f"{SITE}/pricing"
    assert mine["currentPage"]["title"] == "Pricing"
    assert mine["currentPage"]["focused"] is True
    assert mine["timeOnSiteS"] >= 0
    assert by_id[other.visit_id]["pagesViewed"] == 1


async def test_visitor_history_lists_past_visits(client: Client, factory: Factory):
    await post_events(client, factory.start())
    first_visit = factory.visit_id
    factory.visit_id, factory.page_id = new_id(), new_id()
    await post_events(client, factory.start())

    path = url(client, "visitor-visits", globalVisitID=factory.global_visit_id)
    r = await client.get(path, headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    VisitorVisitsOut.model_validate(body)
    assert {v["visitID"] for v in body["visits"]} == {first_visit, factory.visit_id}
    assert all(v["pagesViewed"] == 1 for v in body["visits"])
    r = await client.get(path, params={"limit": "1"}, headers=AUTH)
    assert len((await r.json())["visits"]) == 1
    r = await client.get(path, params={"limit": "0"}, headers=AUTH)
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "limit"


async def test_history_needs_a_valid_api_key(client: Client, factory: Factory):
    path = url(client, "visit", visitID=factory.visit_id)
    r = await client.get(path)
    assert r.status == 401
    assert (await r.json())["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = await client.get(path, headers={"X-API-Key": "wrong"})
    assert r.status == 401
    assert (await r.json())["message"] == "the API key is not valid"
    r = await client.get(path, headers={"Authorization": "Bearer test-api-key"})
    assert r.status == 404


async def test_bad_and_unknown_visit_ids(client: Client):
    r = await client.get(url(client, "visit", visitID="abc"), headers=AUTH)
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "visitID"
    r = await client.get(url(client, "visit", visitID=new_id()), headers=AUTH)
    assert r.status == 404
    assert (await r.json())["error"] == "not_found"


async def test_history_survives_a_restart(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    client = await aiohttp_client(create_app(settings))
    events = factory.start() + [factory.event("AddToCart", {"price": 600})]
    await post_events(client, events)
    await client.close()  # graceful stop: queued history is written

    client = await aiohttp_client(create_app(settings))
    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    visit = await r.json()
    assert visit["live"] is True  # taken back on start (tests/test_restart.py)
    assert [e["eventID"] for e in visit["events"]] == [e["eventID"] for e in events]
    # The same visit goes on after the restart: its row merges, nothing is duplicated.
    answer = await post_events(client, [*events, *factory.navigate(f"{SITE}/cart", "Cart")])
    assert answer == {"accepted": 2, "duplicates": len(events)}
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    assert len(visit["events"]) == len(events) + 2
    assert len(visit["pages"]) == 2
    assert visit["startedAt"] < visit["lastSeenAt"]


async def test_openapi_lists_every_route(client: Client):
    r = await client.get(url(client, "openapi"))
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    app: web.Application = client.app  # type: ignore[assignment]
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for resource in app.router.resources():
        for route in resource:
            path = resource.canonical
            html = path == "/" or path.startswith(("/demo", "/console"))  # pages, not the API
            if route.method in {"OPTIONS", "HEAD"} or html:
                continue
            assert (route.method, path) in documented
    visit_op = doc["paths"]["/api/v1/visits/{visitID}"]["get"]
    assert visit_op["security"] == [{"apiKey": []}, {"bearer": []}, {"basic": []}]
    assert "VisitOut" in doc["components"]["schemas"]

"""GWE's History REST API under /server/data/, checked against GWE's documented resources.

GWE's documentation (Visit/Event/Identity resources, "Query visit", "Query events by visit",
"Query events by identity" with `page_size` and `Paging-Next`) gives the field names compared here.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.gwe_history import GweEvents, GweVisit
from engagement.api.state import REGISTRY
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
# GWE's documented Visit resource fields (Query visit example), in the engine's answer.
GWE_VISIT_KEYS = {"visitId", "startDate", "endDate", "globalVisitID", "userAgentID",
                  "eventIds", "events", "pageIds", "pages"}  # fmt: skip
# GWE's documented Event resource fields (Query event example).
GWE_EVENT_KEYS = {"eventID", "category", "eventType", "eventName", "serverTimestamp",
                  "browserPageID", "globalVisitID", "url", "timestamp", "visitID", "pageID",
                  "data"}  # fmt: skip


def url(client: Client, name: str, query: dict[str, str] | None = None, **parts: str) -> str:
    u = client.app.router[name].url_for(**parts)
    return str(u.with_query(query) if query else u)


async def get_json(client: Client, target: str, status: int = 200, **kw: Any) -> Any:
    r = await client.get(target, headers=kw.pop("headers", AUTH), **kw)
    assert r.status == status, await r.text()
    return await r.json()


async def shop_visit(client: Client, factory: Factory) -> list[dict[str, Any]]:
    """Home, then products with an AddToCart: five events on two pages."""
    events = factory.start()
    events += factory.navigate(f"{SITE}/products", "Products")
    events.append(factory.event("AddToCart", {"sku": "WH15", "price": 1199}, category="cart"))
    await post_events(client, events)
    return events


PYTEST_UA_ID = hashlib.sha256(b"pytest").hexdigest()[:32].upper()  # user agent "pytest"


async def test_visit_has_gwe_fields_and_end_date_zero_while_open(client: Client, factory: Factory):
    before = now_ms()
    await shop_visit(client, factory)
    after = now_ms()

    visit = await get_json(client, url(client, "gwe-visit", visitId=factory.visit_id))
    GweVisit.model_validate(visit)
    assert visit.keys() >= GWE_VISIT_KEYS
    assert before <= visit.pop("startDate") <= after
    assert visit == {
        "visitId": factory.visit_id,
        "endDate": 0,
        "globalVisitID": factory.global_visit_id,
        "userAgentID": PYTEST_UA_ID,
        "userAgent": "pytest",
        "languageCode": "en-GB",
        "timezoneOffset": -60,
        "pageIds": None,
        "pages": None,
        "eventIds": None,
        "events": None,
    }


async def test_closed_visit_has_its_end_date(client: Client, factory: Factory):
    await shop_visit(client, factory)
    closed_at = now_ms() + 10_000_000
    (closed,) = client.app[REGISTRY].close_idle(closed_at)
    assert closed.visit_id == factory.visit_id

    visit = await get_json(client, url(client, "gwe-visit", visitId=factory.visit_id))
    assert visit["endDate"] == closed_at


async def test_visit_includes_page_and_event_ids_then_resources(client: Client, factory: Factory):
    first_page = factory.page_id
    before = now_ms()
    events = await shop_visit(client, factory)
    after = now_ms()
    target = url(client, "gwe-visit", {"include_pages": "true", "include_events": "true"},
                 visitId=factory.visit_id)  # fmt: skip
    visit = await get_json(client, target)
    assert visit["pageIds"] == [first_page, factory.page_id]
    assert visit["eventIds"] == [e["eventID"] for e in events]
    assert (visit["pages"], visit["events"]) == (None, None)

    detail = {"include_pages": "true", "include_pages_detail": "true",
              "include_events": "true", "include_events_detail": "true"}  # fmt: skip
    visit = await get_json(client, url(client, "gwe-visit", detail, visitId=factory.visit_id))
    GweVisit.model_validate(visit)
    assert [(p["pageId"], p["url"], p["title"]) for p in visit["pages"]] == [
        (first_page, f"{SITE}/", "Home"),
        (factory.page_id, f"{SITE}/products", "Products"),
    ]
    assert visit["pages"][0]["endDate"] > 0  # left for the products page
    assert visit["pages"][1]["endDate"] == 0  # still on it
    cart = visit["events"][-1]
    assert cart.keys() >= GWE_EVENT_KEYS
    assert before <= cart.pop("serverTimestamp") <= after
    assert cart == {
        "eventID": events[-1]["eventID"],
        "category": "cart",
        "eventType": "BUSINESS",
        "eventName": "AddToCart",
        "browserPageID": factory.page_id,
        "globalVisitID": factory.global_visit_id,
        "url": f"{SITE}/products",
        "timestamp": events[-1]["timestamp"],
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "languageCode": "en-GB",
        "data": {"sku": "WH15", "price": 1199},
    }


async def test_detail_without_its_list_has_no_effect(client: Client, factory: Factory):
    await shop_visit(client, factory)
    plain = await get_json(client, url(client, "gwe-visit", visitId=factory.visit_id))
    target = url(client, "gwe-visit", {"include_pages_detail": "true"}, visitId=factory.visit_id)

    assert await get_json(client, target) == plain


async def test_unknown_query_parameter_is_named(client: Client, factory: Factory):
    await shop_visit(client, factory)
    target = url(client, "gwe-visit-events", {"eventname": "AddToCart"}, visitId=factory.visit_id)
    body = await get_json(client, target, status=400)
    assert [d["field"] for d in body["details"]] == ["eventname"]


async def test_unknown_visit_is_404_and_bad_id_400(client: Client):
    body = await get_json(client, url(client, "gwe-visit", visitId=new_id()), status=404)
    assert body["details"] == [{"field": "visitId", "message": "unknown"}]
    body = await get_json(client, url(client, "gwe-visit", visitId="nope"), status=400)
    assert body["details"][0]["field"] == "visitId"


async def test_events_of_a_visit_filtered_as_gwe(client: Client, factory: Factory):
    first_page = factory.page_id
    events = await shop_visit(client, factory)
    ids = {e["eventName"] + str(i): e["eventID"] for i, e in enumerate(events)}
    cases = [
        ({}, list(ids.values())),
        ({"eventName": "PageEntered"}, [ids["PageEntered1"], ids["PageEntered3"]]),
        ({"eventType": "BUSINESS"}, [ids["AddToCart4"]]),
        ({"category": "cart"}, [ids["AddToCart4"]]),
        ({"category": "all categories"}, [ids["AddToCart4"]]),
        ({"category": "shoes"}, []),
        ({"url": f"{SITE}/"}, [ids["VisitStarted0"], ids["PageEntered1"], ids["PageExited2"]]),
        ({"browserPageID": first_page},
         [ids["VisitStarted0"], ids["PageEntered1"], ids["PageExited2"]]),
        ({"globalVisitID": new_id()}, []),
        ({"age": "3600", "eventType": "SYSTEM", "eventName": "PageExited"}, [ids["PageExited2"]]),
    ]  # fmt: skip
    for query, expected in cases:
        target = url(client, "gwe-visit-events", query, visitId=factory.visit_id)
        found = await get_json(client, target)
        GweEvents.model_validate(found)
        assert [e["eventID"] for e in found] == expected, query


async def test_events_are_paged_with_paging_next(client: Client, factory: Factory):
    events = await shop_visit(client, factory)
    seen: list[str] = []
    target: str | None = url(client, "gwe-visit-events", {"page_size": "2"},
                             visitId=factory.visit_id)  # fmt: skip
    sizes = []
    while target is not None:
        r = await client.get(target, headers=AUTH)
        assert r.status == 200, await r.text()
        page = await r.json()
        sizes.append(len(page))
        seen += [e["eventID"] for e in page]
        token = r.headers.get("Paging-Next")
        target = None
        if token is not None:  # GWE: pass the token back; the Link header says the same
            target = url(client, "gwe-visit-events", {"page_size": "2", "page_start": token},
                         visitId=factory.visit_id)  # fmt: skip
            assert r.headers["Link"] == f'<{target}>; rel="next"'
    assert sizes == [2, 2, 1]
    assert seen == [e["eventID"] for e in events]


async def test_page_size_is_bounded(client: Client, factory: Factory):
    target = url(client, "gwe-visit-events", {"page_size": "100000"}, visitId=factory.visit_id)
    body = await get_json(client, target, status=400)
    assert body["details"][0]["field"] == "page_size"


async def test_events_of_a_page(client: Client, factory: Factory):
    events = await shop_visit(client, factory)
    found = await get_json(client, url(client, "gwe-page-events", pageId=factory.page_id))
    assert [e["eventID"] for e in found] == [events[3]["eventID"], events[4]["eventID"]]
    target = url(client, "gwe-page-events", {"eventType": "BUSINESS"}, pageId=factory.page_id)
    assert [e["eventName"] for e in await get_json(client, target)] == ["AddToCart"]


async def test_history_needs_a_key_or_a_basic_user(client: Client, factory: Factory):
    await shop_visit(client, factory)
    target = url(client, "gwe-visit", visitId=factory.visit_id)
    body = await get_json(client, target, status=401, headers={})
    assert body["error"] == "unauthorized"
    basic = {"Authorization": "Basic " + base64.b64encode(b"agent:secret").decode()}
    await get_json(client, target, status=401, headers=basic)  # no basic users configured


async def test_basic_auth_beside_api_keys(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    settings = settings.model_copy(update={"basic_auth_users": {"agent": "s3cret", "crm": "x"}})
    client = await aiohttp_client(create_app(settings))
    await shop_visit(client, factory)
    target = url(client, "gwe-visit", visitId=factory.visit_id)

    def basic(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    assert (await get_json(client, target, headers=basic("agent", "s3cret")))["visitId"]
    assert (await get_json(client, target, headers=basic("crm", "x")))["visitId"]
    assert (await get_json(client, target, headers=AUTH))["visitId"]  # API keys still work
    for bad in (basic("agent", "x"), basic("crm", "s3cret"), basic("nobody", "s3cret"),
                {"Authorization": "Basic not-base64!"}):  # fmt: skip
        r = await client.get(target, headers=bad)
        assert r.status == 401, bad
        assert r.headers["WWW-Authenticate"] == 'Bearer, Basic realm="engagement"'

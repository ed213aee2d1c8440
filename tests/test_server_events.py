"""Server-side events (issue 14): a back end or a mobile app posts events for a visit with an
API key, through the tracker's validation, ingest and strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.server_events import ServerEventOut
from engagement.app import create_app
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events
from .test_gwe_history import get_json, url

Client = TestClient[Any, Any]
ORDERS = """
strategies:
  - name: order-failed
    when: {event: {name: PaymentFailed, where: {amount: {gt: 100}}}}
    offer: {invite: chat.html, media: chat}
  - name: gold-on-pricing
    target: {user: {tier: gold}}
    when: {url: /pricing}
    offer: {invite: callback.html, media: callback}
"""


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path) -> Client:
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "orders.yaml").write_text(ORDERS)
    settings = settings.model_copy(update={"strategies_dir": folder})
    return await aiohttp_client(create_app(settings))


async def post_event(client: Client, visit_id: str, body: Any, status: int = 201, **kw: Any) -> Any:
    target = url(client, "gwe-visit-event-create", visitId=visit_id)
    r = await client.post(target, json=body, headers=kw.pop("headers", AUTH))
    assert r.status == status, await r.text()
    return await r.json()


async def attempts(client: Client, factory: Factory) -> list[str]:
    visit = await get_json(client, url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    return [a["strategy"] for a in visit["attempts"]]


async def test_back_end_event_joins_the_visit_on_its_current_page(client: Client, factory: Factory):
    await post_events(client, factory.start(f"{SITE}/checkout", "Checkout"))
    event_id = new_id()
    body = {"eventName": "OrderShipped", "eventID": event_id, "data": {"order": "O-1"},
            "timestamp": 1_700_000_000_000}  # fmt: skip
    answer = await post_event(client, factory.visit_id, body)
    ServerEventOut.model_validate(answer)
    assert answer == {
        "eventID": event_id,
        "visitID": factory.visit_id,
        "globalVisitID": factory.global_visit_id,
        "pageID": factory.page_id,
        "accepted": 1,
        "duplicates": 0,
    }
    target = url(client, "gwe-visit-events", {"eventType": "BUSINESS"}, visitId=factory.visit_id)
    (stored,) = await get_json(client, target)
    stored.pop("serverTimestamp")
    assert stored == {
        "eventID": event_id,
        "category": "",
        "eventType": "BUSINESS",
        "eventName": "OrderShipped",
        "browserPageID": factory.page_id,
        "globalVisitID": factory.global_visit_id,
        "url": f"{SITE}/checkout",
        "timestamp": 1_700_000_000_000,
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "languageCode": "en-GB",
        "data": {"order": "O-1"},
    }
    again = await post_event(client, factory.visit_id, body, status=200)
    assert (again["accepted"], again["duplicates"]) == (0, 1)


async def test_back_end_event_triggers_strategies(client: Client, factory: Factory):
    await post_events(client, factory.start())
    await post_event(client, factory.visit_id, {"eventName": "PaymentFailed",
                                                "data": {"amount": 50}})  # fmt: skip
    assert await attempts(client, factory) == []
    await post_event(client, factory.visit_id, {"eventName": "PaymentFailed",
                                                "data": {"amount": 250}})  # fmt: skip
    assert await attempts(client, factory) == ["order-failed"]


async def test_crm_user_info_feeds_identity_targeting(client: Client, factory: Factory):
    await post_events(client, factory.start())
    body = {"eventType": "SYSTEM", "eventName": "UserInfo",
            "data": {"identityId": "ada@example.com", "tier": "gold"}}  # fmt: skip
    await post_event(client, factory.visit_id, body)
    await post_events(client, factory.navigate(f"{SITE}/pricing", "Pricing"))
    assert await attempts(client, factory) == ["gold-on-pricing"]
    identity = await get_json(client, url(client, "gwe-identity", identityId="ada@example.com"))
    assert (identity["visitScope"], identity["attributes"]["tier"]) == ("Recognized", "gold")


async def test_mobile_app_starts_its_own_visit(client: Client):
    visit_id, global_visit_id, page_id = new_id(), new_id(), new_id()
    body = {"eventType": "SYSTEM", "eventName": "PageEntered", "globalVisitID": global_visit_id,
            "pageID": page_id, "url": "app://shop/cart", "data": {"title": "Cart"}}  # fmt: skip
    answer = await post_event(client, visit_id, body)
    assert (answer["globalVisitID"], answer["pageID"]) == (global_visit_id, page_id)
    visit = await get_json(client, url(client, "gwe-visit", visitId=visit_id))
    assert (visit["globalVisitID"], visit["endDate"]) == (global_visit_id, 0)


async def test_refusals_name_the_field(client: Client, factory: Factory):
    await post_events(client, factory.start())
    cases = [
        ({"data": {}}, "eventName", 400, "invalid_input"),
        ({"eventName": "X", "pageID": "p1"}, "pageID", 400, "invalid_input"),
        ({"eventName": "X", "colour": "red"}, "colour", 400, "invalid_input"),
        # the tracker's own checks of a system event's data, after the body's
        (
            {"eventType": "SYSTEM", "eventName": "PageEntered", "data": {"title": 5}},
            "data.title",
            400,
            "invalid_input",
        ),
        # each valid, but not with this path's visit: a conflict, not a malformed body
        ({"eventName": "X", "visitID": new_id()}, "visitID", 409, "conflict"),
        ({"eventName": "X", "globalVisitID": new_id()}, "globalVisitID", 409, "conflict"),
    ]
    for body, field, status, error in cases:
        answer = await post_event(client, factory.visit_id, body, status=status)
        assert answer["error"] == error, body
        assert [d["field"] for d in answer["details"]] == [field], body


async def test_unknown_visit_without_global_id_is_404_and_key_is_required(client: Client):
    visit_id = new_id()
    answer = await post_event(client, visit_id, {"eventName": "X"}, status=404)
    assert answer["details"] == [{"field": "visitId", "message": "not live"}]
    answer = await post_event(client, visit_id, {"eventName": "X"}, status=401, headers={})
    assert answer["error"] == "unauthorized"

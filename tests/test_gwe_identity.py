"""Identities (issue 14): SignIn creates one, SignOut leaves the visit Recognized, and an
identity's visits on several browsers are one history."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.gwe_history import GweEvents, GweIdentity, GweVisits
from engagement.api.state import HISTORY
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events
from .test_gwe_history import get_json, url

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
ADA = "ada@example.com"
SIGN_IN = {"identityId": ADA, "name": "Ada Lovelace", "location": "London",
           "entityInCS": "CS-42", "tier": "gold"}  # fmt: skip


def assert_newest_first(visits: list[dict[str, Any]], browsers: list[Factory]) -> None:
    """Each browser's visit once, newest first (visits started in one millisecond: by ID)."""
    assert sorted(v["visitId"] for v in visits) == sorted(b.visit_id for b in browsers)
    order = [(v["startDate"], v["visitId"]) for v in visits]
    assert order == sorted(order, reverse=True)


async def signed_in(client: Client, factory: Factory, data: dict[str, Any]) -> list[Any]:
    events = factory.start() + [factory.event("SignIn", data)]
    await post_events(client, events)
    return events


async def test_sign_in_creates_the_identity(client: Client, factory: Factory):
    await signed_in(client, factory, SIGN_IN)
    identity = await get_json(client, url(client, "gwe-identity", identityId=ADA))
    GweIdentity.model_validate(identity)
    created = identity.pop("createdDate")
    assert identity.pop("updatedDate") == created
    assert identity == {
        "identityId": ADA,
        "name": "Ada Lovelace",
        "location": "London",
        "entityInCS": "CS-42",
        "visitScope": "Authenticated",
        "attributes": {"identityId": ADA, "tier": "gold"},
    }


async def test_sign_in_again_updates_it_and_sign_out_leaves_it_recognized(
    client: Client, factory: Factory
):
    await signed_in(client, factory, SIGN_IN)
    await post_events(client, [factory.event("UserInfo", {"phone": "+44 20"})])
    await post_events(client, [factory.event("SignOut")])
    identity = await get_json(client, url(client, "gwe-identity", identityId=ADA))
    assert identity["visitScope"] == "Recognized"
    assert identity["name"] == "Ada Lovelace"
    assert identity["attributes"] == {"identityId": ADA, "tier": "gold", "phone": "+44 20"}
    visit = await get_json(client, url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert visit["identity"] == "recognized"
    (listed,) = await get_json(client, url(client, "gwe-identity-visits", identityId=ADA))
    assert (listed["visitId"], listed["visitScope"]) == (factory.visit_id, "Recognized")


async def test_identity_id_from_gwe_user_id_or_email(client: Client, factory: Factory):
    await signed_in(client, factory, {"userID": "user@genesyslab.com", "firstName": "Pat",
                                      "lastName": "Thompson"})  # fmt: skip
    other = Factory()
    await signed_in(client, other, {"email": "bob@example.com"})
    pat = await get_json(client, url(client, "gwe-identity", identityId="user@genesyslab.com"))
    assert pat["name"] == "Pat Thompson"
    bob = await get_json(client, url(client, "gwe-identity", identityId="bob@example.com"))
    assert (bob["name"], bob["location"], bob["entityInCS"]) == (None, None, None)


async def test_sign_in_without_an_id_makes_no_identity(client: Client, factory: Factory):
    await signed_in(client, factory, {"tier": "gold"})
    body = await get_json(client, url(client, "gwe-identity", identityId="gold"), status=404)
    assert body["details"] == [{"field": "identityId", "message": "unknown"}]


async def test_visits_on_two_browsers_are_one_history(client: Client):
    laptop, phone = Factory(), Factory()  # two browsers: two globalVisitIDs
    laptop_events = await signed_in(client, laptop, SIGN_IN)
    phone_events = await signed_in(client, phone, {"identityId": ADA})
    cart = phone.event("AddToCart", {"sku": "PK11"})
    await post_events(client, [cart])
    stranger = Factory()
    await signed_in(client, stranger, {"identityId": "eve@example.com"})

    visits = await get_json(client, url(client, "gwe-identity-visits", identityId=ADA))
    GweVisits.model_validate(visits)
    assert_newest_first(visits, [laptop, phone])
    browser_of = {v["visitId"]: v["globalVisitID"] for v in visits}
    assert browser_of == {laptop.visit_id: laptop.global_visit_id,
                          phone.visit_id: phone.global_visit_id}  # fmt: skip
    events = await get_json(client, url(client, "gwe-identity-events", identityId=ADA))
    GweEvents.model_validate(events)
    expected = laptop_events + phone_events + [cart]  # arrival order, across browsers
    assert [e["eventID"] for e in events] == [e["eventID"] for e in expected]

    only_phone = {"globalVisitID": phone.global_visit_id}
    target = url(client, "gwe-identity-visits", only_phone, identityId=ADA)
    assert [v["visitId"] for v in await get_json(client, target)] == [phone.visit_id]
    target = url(client, "gwe-identity-events", {"eventType": "BUSINESS"}, identityId=ADA)
    assert [e["eventName"] for e in await get_json(client, target)] == ["AddToCart"]


async def test_identity_visits_are_paged_and_embed_pages(client: Client):
    browsers = [Factory() for _ in range(3)]
    for browser in browsers:
        await signed_in(client, browser, {"identityId": ADA})
    query = {"page_size": "2", "include_pages": "true"}
    r = await client.get(url(client, "gwe-identity-visits", query, identityId=ADA), headers=AUTH)
    assert r.status == 200, await r.text()
    first = await r.json()
    token = r.headers["Paging-Next"]
    target = url(client, "gwe-identity-visits", {**query, "page_start": token}, identityId=ADA)
    assert r.headers["Link"] == f'<{target}>; rel="next"'
    r = await client.get(target, headers=AUTH)
    second = await r.json()
    assert "Paging-Next" not in r.headers
    listed = first + second
    assert_newest_first(listed, browsers)
    page_of = {b.visit_id: b.page_id for b in browsers}
    assert [v["pageIds"] for v in listed] == [[page_of[v["visitId"]]] for v in listed]
    assert {v["pages"] is None for v in first + second} == {True}


async def test_identities_survive_a_restart(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    client = await aiohttp_client(create_app(settings))
    await signed_in(client, factory, SIGN_IN)
    await client.close()  # a graceful stop writes what is queued

    client = await aiohttp_client(create_app(settings))
    identity = await get_json(client, url(client, "gwe-identity", identityId=ADA))
    assert identity["visitScope"] == "Authenticated"
    visits = await get_json(client, url(client, "gwe-identity-visits", identityId=ADA))
    assert [v["visitId"] for v in visits] == [factory.visit_id]


async def test_strategy_targets_identity_attributes(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory, tmp_path: Any
):
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "gold.yaml").write_text(
        "strategies:\n"
        "  - name: gold-members\n"
        "    target: {user: {tier: gold}}\n"
        "    when: {url: /pricing}\n"
        "    offer: {invite: chat.html, media: chat}\n"
    )
    settings = settings.model_copy(update={"strategies_dir": folder})
    client = await aiohttp_client(create_app(settings))
    silver = Factory()
    await signed_in(client, silver, {"identityId": "s@example.com", "tier": "silver"})
    await post_events(client, silver.navigate(f"{SITE}/pricing", "Pricing"))
    await signed_in(client, factory, SIGN_IN)
    await post_events(client, factory.navigate(f"{SITE}/pricing", "Pricing"))

    def strategies(visit: dict[str, Any]) -> list[str]:
        return [a["strategy"] for a in visit["attempts"]]

    gold = await get_json(client, url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert strategies(gold) == ["gold-members"]
    other = await get_json(client, url(client, "visit", visitID=silver.visit_id), headers=AUTH)
    assert strategies(other) == []


async def test_retention_purge_takes_identity_links_and_unused_identities(
    client: Client, factory: Factory
):
    await signed_in(client, factory, SIGN_IN)
    assert await client.app[HISTORY].purge(now_ms() + 1) == 1
    assert await get_json(client, url(client, "gwe-identity-visits", identityId=ADA)) == []
    await get_json(client, url(client, "gwe-identity", identityId=ADA), status=404)


async def test_identities_of_a_visit_by_association(client: Client, factory: Factory):
    await signed_in(client, factory, SIGN_IN)
    target = url(client, "gwe-visit-identities", visitId=factory.visit_id)
    found = await get_json(client, target)
    assert [(i["identityId"], i["visitScope"]) for i in found] == [(ADA, "Authenticated")]
    await post_events(client, [factory.event("SignOut")])
    recognized = url(client, "gwe-visit-identities", {"association": "Recognized"},
                     visitId=factory.visit_id)  # fmt: skip
    assert [i["identityId"] for i in await get_json(client, recognized)] == [ADA]
    authenticated = url(client, "gwe-visit-identities", {"association": "Authenticated"},
                        visitId=factory.visit_id)  # fmt: skip
    assert await get_json(client, authenticated) == []
    anonymous = Factory()
    await post_events(client, anonymous.start())
    assert await get_json(client, url(client, "gwe-visit-identities",
                                      visitId=anonymous.visit_id)) == []  # fmt: skip


async def test_visits_embedding_their_events_come_at_most_20_a_page(client: Client):
    browsers = [Factory() for _ in range(21)]
    for browser in browsers:
        await signed_in(client, browser, {"identityId": ADA})
    query = {"page_size": "1000", "include_events": "true", "include_events_detail": "true"}
    r = await client.get(url(client, "gwe-identity-visits", query, identityId=ADA), headers=AUTH)
    assert r.status == 200, await r.text()
    first = await r.json()
    assert [len(v["events"]) for v in first] == [3] * 20  # VisitStarted, PageEntered, SignIn
    target = url(client, "gwe-identity-visits", {**query, "page_start": r.headers["Paging-Next"]},
                 identityId=ADA)  # fmt: skip
    rest = await get_json(client, target)
    assert_newest_first(first + rest, browsers)

"""An operator's first hour: notify tells a closed page from an open one, the console finds
past visits."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from .conftest import AUTH, Factory, new_id, post_events

Client = TestClient[Any, Any]


def publish(page: str | None) -> list[dict[str, Any]]:
    return [{"page": page, "channel": "gpe.publish", "data": {"event": "Promo"}}]


async def test_notify_to_a_page_that_is_not_open_is_404_naming_page(
    client: Client, factory: Factory
):
    await post_events(client, factory.start())
    first_page = factory.page_id
    await post_events(client, factory.navigate(f"{factory.url}cart", "Cart"))
    url = client.app.router["notify"].url_for(visitID=factory.visit_id)
    unknown = new_id()

    r = await client.post(url, json=publish(factory.page_id) + publish(first_page), headers=AUTH)

    assert r.status == 404, await r.text()
    assert await r.json() == {
        "error": "not_found",
        "message": f"1.page: page {first_page} of visit {factory.visit_id} is not open "
        "(closed); omit page to reach every open page of the visit",
        "details": [{"field": "1.page", "message": "closed"}],
    }
    r = await client.post(url, json=publish(unknown), headers=AUTH)
    assert r.status == 404, await r.text()
    assert (await r.json())["details"] == [{"field": "0.page", "message": "unknown"}]
    for page in (factory.page_id, None):
        r = await client.post(url, json=publish(page), headers=AUTH)
        assert r.status == 200, await r.text()

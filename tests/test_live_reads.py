"""Reads of live visits that stay cheap: the paged, filtered API listing and the console's
incremental updates."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.history import LiveVisitsOut
from engagement.api.state import LIFECYCLE, REGISTRY
from engagement.attempts import Origin
from engagement.monitoring.ingest import now_ms
from engagement.visits.live import LiveFilter, live_page

from .conftest import AUTH, SITE, Factory, post_events
from .test_console import sign_in

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]


async def start_visits(client: Client, n: int) -> list[Factory]:
    visitors = []
    for i in range(n):
        visitor = Factory()
        events = visitor.start(f"{SITE}/page-{i}", f"Page {i}")
        events[1]["category"] = "even" if i % 2 == 0 else "odd"
        await post_events(client, events)
        visitors.append(visitor)
    return visitors


async def live(client: Client, **query: Any) -> dict[str, Any]:
    url = client.app.router["live-visits"].url_for().with_query(query)
    r = await client.get(url, headers=AUTH)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    LiveVisitsOut.model_validate(body)
    return body


async def test_live_visits_come_a_page_at_a_time_most_recent_first(client: Client):
    visitors = await start_visits(client, 5)
    newest_first = [v.visit_id for v in reversed(visitors)]

    first = await live(client, limit=2)
    assert [v["visitID"] for v in first["visits"]] == newest_first[:2]
    assert first["count"] == 5
    # Activity between pages brings a visit to the top, not into the next pages twice.
    await post_events(client, [visitors[4].event("FocusChanged", {"focused": False})])
    second = await live(client, limit=2, cursor=first["nextCursor"])
    assert [v["visitID"] for v in second["visits"]] == newest_first[2:4]
    third = await live(client, limit=2, cursor=second["nextCursor"])
    assert [v["visitID"] for v in third["visits"]] == newest_first[4:]
    assert third["nextCursor"] is None


async def test_live_visits_filtered_by_page_category_identity_and_engagement(client: Client):
    visitors = await start_visits(client, 4)
    await post_events(client, [visitors[1].event("SignIn", {"customerID": "C-1"})])
    visit = client.app[REGISTRY].get(visitors[2].visit_id)
    lifecycle = client.app[LIFECYCLE]
    attempt = lifecycle.new_attempt(visit, "s", Origin.AGENT, "chat.html", "chat", {}, 30)
    lifecycle.add(visit, attempt, offer=False)

    async def ids(**query: Any) -> list[str]:
        return [v["visitID"] for v in (await live(client, **query))["visits"]]

    assert await ids(page="/page-3") == [visitors[3].visit_id]
    assert await ids(category="even") == [visitors[2].visit_id, visitors[0].visit_id]
    assert await ids(identity="authenticated") == [visitors[1].visit_id]
    assert await ids(engagement="detected") == [visitors[2].visit_id]
    assert await ids(engagement="live") == [visitors[2].visit_id]
    assert set(await ids(engagement="none")) == {visitors[i].visit_id for i in (0, 1, 3)}
    [entry] = (await live(client, engagement="detected"))["visits"]
    assert (entry["engagement"], entry["engagementStrategy"]) == ("detected", "s")


async def test_live_listing_refuses_bad_parameters_naming_them(client: Client):
    url = client.app.router["live-visits"].url_for()
    for query, field in (({"limit": "0"}, "limit"), ({"engagement": "bored"}, "engagement"),
                         ({"identity": "x"}, "identity"), ({"cursor": "-1"}, "cursor"),
                         ({"sort": "x"}, "sort")):  # fmt: skip
        r = await client.get(url.with_query(query), headers=AUTH)
        assert r.status == 400, query
        assert (await r.json())["details"][0]["field"] == field


async def test_a_listing_scans_a_bounded_number_of_visits(client: Client):
    visitors = await start_visits(client, 6)
    registry = client.app[REGISTRY]
    wanted = LiveFilter(category="even")
    page = live_page(registry, wanted, limit=10, max_scan=3)  # 5, 4, 3 scanned: 4 matched
    assert [v.visit_id for v in page.visits] == [visitors[4].visit_id]
    assert page.next_cursor is not None
    rest = live_page(registry, wanted, limit=10, cursor=page.next_cursor, max_scan=3)
    assert [v.visit_id for v in rest.visits] == [visitors[2].visit_id, visitors[0].visit_id]
    assert rest.next_cursor is None


async def visitors_json(client: Client, since: int) -> dict[str, Any]:
    url = client.app.router["console-visitors-json"].url_for().with_query(since=since)
    r = await client.get(url)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def test_the_console_gets_only_what_changed_since_its_last_poll(client: Client):
    visitors = await start_visits(client, 3)
    await sign_in(client)
    full = await visitors_json(client, 0)
    assert full["full"] is True
    assert [v["visitID"] for v in full["visits"]] == [v.visit_id for v in reversed(visitors)]

    nothing = await visitors_json(client, full["version"])
    assert (nothing["full"], nothing["visits"], nothing["gone"]) == (False, [], [])
    assert nothing["version"] == full["version"]

    await post_events(client, [visitors[0].event("AddToCart", {"sku": "A"})])
    client.app[REGISTRY].close_idle(now_ms() + 10_000_000)  # everyone leaves ...
    newcomer = Factory()
    await post_events(client, newcomer.start())  # ... and someone comes
    delta = await visitors_json(client, nothing["version"])
    assert delta["full"] is False
    assert [v["visitID"] for v in delta["visits"]] == [newcomer.visit_id]
    assert sorted(delta["gone"]) == sorted(v.visit_id for v in visitors)
    assert delta["count"] == 1


async def test_an_engagement_change_reaches_the_console(client: Client):
    [visitor] = await start_visits(client, 1)
    await sign_in(client)
    version = (await visitors_json(client, 0))["version"]
    visit = client.app[REGISTRY].get(visitor.visit_id)
    lifecycle = client.app[LIFECYCLE]
    attempt = lifecycle.new_attempt(visit, "s", Origin.AGENT, "chat.html", "chat", {}, 30)
    lifecycle.add(visit, attempt, offer=False)
    lifecycle.cancel(attempt, "test")
    delta = await visitors_json(client, version)
    assert [(v["visitID"], v["engagement"]) for v in delta["visits"]] == [
        (visitor.visit_id, "cancelled")
    ]


async def test_a_version_from_before_a_restart_gets_everything(client: Client):
    await start_visits(client, 2)
    await sign_in(client)
    body = await visitors_json(client, 10**9)
    assert body["full"] is True
    assert len(body["visits"]) == 2

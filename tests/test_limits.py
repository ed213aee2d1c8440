"""Memory caps (README, "Limits"): what a visit and the engine hold, and what happens at a cap."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, REGISTRY
from engagement.notifications.hub import CLOSED, LocalHub, encode
from engagement.settings import Settings
from engagement.strategy.conditions import Ctx, compile_condition
from engagement.strategy.schema import Condition
from engagement.visits.model import VisitCaps
from engagement.visits.registry import AtCapacity, VisitRegistry

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events
from .test_operations import sample
from .test_visits import GVID, PAGE1, VISIT, ListSink, ev

Client = TestClient[Any, Any]


def test_at_the_cap_the_least_recently_active_idle_visit_is_closed_first():
    sink = ListSink()
    registry = VisitRegistry(sink, visit_timeout_s=600, max_visits=2, evict_idle_after_s=10)
    a, b, c, d = "A" * 32, "B" * 32, "C" * 32, "D" * 32
    registry.ingest([ev("PageEntered", PAGE1, 1_000, visit=a)])
    registry.ingest([ev("PageEntered", PAGE1, 2_000, visit=b)])
    registry.ingest([ev("FocusChanged", PAGE1, 3_000, {"focused": True}, visit=a)])  # a is active
    registry.ingest([ev("PageEntered", PAGE1, 20_000, visit=c)])  # b idle 18 s: makes room
    assert sink.closed == [b]
    assert [v.visit_id for v in registry] == [a, c]
    assert registry.evicted_total == 1
    registry.ingest([ev("PageEntered", PAGE1, 20_500, visit=d)])  # a idle 17.5 s: room
    assert sink.closed == [b, a]
    with pytest.raises(AtCapacity):  # c and d are active: no room
        registry.ingest([ev("PageEntered", PAGE1, 21_000, visit=b)])
    assert (registry.refused_total, len(registry), registry.get(b)) == (1, 2, None)


def test_a_visit_keeps_its_recent_pages_and_events_and_counts_the_rest():
    caps = VisitCaps(max_pages=3, max_events=4)
    registry = VisitRegistry(ListSink(), visit_timeout_s=600, caps=caps)
    pages = [f"{i:032X}" for i in range(6)]
    for i, page in enumerate(pages):
        registry.ingest([ev("PageEntered", page, 1000 * i, {"title": f"P{i}"})])
    visit = registry.get(VISIT)
    assert visit is not None
    # The landing page (its referrer) and the most recent ones stay.
    assert list(visit.pages) == [pages[0], pages[4], pages[5]]
    assert visit.pages_viewed == 6
    assert visit.summary(6000)["pagesViewed"] == 6
    assert visit.current_page_id == pages[5]
    assert caps.pages_dropped == 3
    assert len(visit.events_by_name["PageEntered"]) == 4
    assert caps.events_dropped == 2


def test_an_event_condition_counts_events_that_left_memory():
    caps = VisitCaps(max_pages=10, max_events=2)
    registry = VisitRegistry(ListSink(), visit_timeout_s=600, caps=caps)
    cart = compile_condition(Condition.model_validate({"event": {"name": "AddToCart", "count": 3}}))
    answers = []
    for t in range(4):
        registry.ingest([ev("AddToCart", PAGE1, t, {"sku": t}, system=False)])
        registry.ingest([ev("Scroll", PAGE1, t, system=False)])  # pushes AddToCart out
        visit = registry.get(VISIT)
        assert visit is not None
        answers.append(cart(Ctx(visit, t, None))[0])  # type: ignore[arg-type]
    assert answers == [False, False, True, True]
    assert caps.events_dropped == 6


def test_a_visit_holds_at_most_its_cap_of_streams_the_oldest_closes():
    hub = LocalHub(max_streams_per_visit=2)
    first, second, third = (hub.connect(GVID, p, 0, 1000) for p in ("P1", "P2", "P3"))
    assert hub.open_streams == 2
    assert hub.streams_dropped_total == 1
    assert first.waiting() == (CLOSED,)
    assert second.waiting() == ()
    assert third.waiting() == ()


async def test_at_the_cap_a_new_visit_gets_503_with_retry_after(
    aiohttp_client: ClientFactory, settings: Settings
):
    from engagement.app import create_app

    settings = settings.model_copy(update={"max_live_visits": 1, "evict_idle_after_s": 3600})
    client = await aiohttp_client(create_app(settings))
    await post_events(client, Factory().start())
    url = client.app.router["events"].url_for()
    other = Factory()
    r = await client.post(url, json={"events": other.start()}, headers={"Origin": SITE})
    assert r.status == 503
    assert r.headers["Retry-After"] == "30"
    body = await r.json()
    assert body["error"] == "at_capacity"
    metrics = await (await client.get(client.app.router["metrics"].url_for())).text()
    assert sample(metrics, "engagement_visits_refused_total") == 1
    assert sample(metrics, "engagement_live_visits_max") == 1


async def test_an_evicted_visit_is_written_closed(
    aiohttp_client: ClientFactory, settings: Settings
):
    from engagement.app import create_app

    settings = settings.model_copy(update={"max_live_visits": 1, "evict_idle_after_s": 0})
    client = await aiohttp_client(create_app(settings))
    first, second = Factory(), Factory()
    await post_events(client, first.start())
    await post_events(client, second.start())
    assert [v.visit_id for v in client.app[REGISTRY]] == [second.visit_id]
    url = client.app.router["visit"].url_for(visitID=first.visit_id)
    r = await client.get(url, headers=AUTH)
    assert r.status == 200
    visit = await r.json()
    assert visit["live"] is False
    assert visit["closedAt"] is not None
    assert len(visit["events"]) == 2
    assert client.app[HISTORY].pending == 0
    metrics = await (await client.get(client.app.router["metrics"].url_for())).text()
    assert sample(metrics, "engagement_visits_evicted_total") == 1


async def test_user_info_merged_across_events_stays_within_its_key_cap(
    client: Client, factory: Factory
):
    await post_events(client, factory.start())
    first = {f"a{i}": i for i in range(60)}
    second = {"a0": "updated", **{f"b{i}": i for i in range(60)}}

    await post_events(client, [factory.event("UserInfo", first)])
    await post_events(client, [factory.event("SignIn", second)])

    r = await client.get(client.app.router["visit"].url_for(visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    kept = {**first, "a0": "updated", **{f"b{i}": i for i in range(40)}}  # 100 keys
    assert (await r.json())["userInfo"] == kept
    metrics = await (await client.get(client.app.router["metrics"].url_for())).text()
    assert sample(metrics, "engagement_user_info_dropped_total") == 20


async def test_user_info_merged_across_events_stays_within_its_byte_cap(
    client: Client, factory: Factory
):
    await post_events(client, factory.start())
    events = [
        factory.event("UserInfo", {"note": "x" * 10_000}),
        factory.event("UserInfo", {"more": "y" * 10_000}),  # 20 KB together: not merged
        factory.event("UserInfo", {"note": "z" * 20, "firstName": "Ada"}),
        factory.event("UserInfo", {"more": "w" * 10_000}),  # fits now that note is small
    ]

    await post_events(client, events)

    r = await client.get(client.app.router["visit"].url_for(visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    assert (await r.json())["userInfo"] == {
        "note": "z" * 20,
        "firstName": "Ada",
        "more": "w" * 10_000,
    }
    metrics = await (await client.get(client.app.router["metrics"].url_for())).text()
    assert sample(metrics, "engagement_user_info_dropped_total") == 1


async def test_a_stream_hands_its_frames_over_in_order_and_heartbeats_when_idle():
    hub = LocalHub()
    stream = hub.connect(GVID, "P1", 0, 1000)
    assert await hub.buffered(GVID) == []  # a stream alone holds no buffer
    assert await stream.get(0.01) is None  # nothing within the heartbeat time
    reader = asyncio.ensure_future(stream.get(5))
    await asyncio.sleep(0)  # the reader waits
    hub.publish(GVID, None, "c", {"n": 1}, 1001)
    hub.publish(GVID, "P1", "c", {"n": 2}, 1002)
    hub.publish(GVID, "P2", "c", {"n": 3}, 1003)  # another page's
    first = await reader
    assert b'"n":1' in first
    second = await stream.get(0.01)
    assert second is not None
    assert b'"n":2' in second
    assert await stream.get(0.01) is None
    assert len(await hub.buffered(GVID)) == 3


async def test_a_cancelled_reader_leaves_the_stream_as_it_was():
    hub = LocalHub()
    stream = hub.connect(GVID, "P1", 0, 1000)
    reader = asyncio.ensure_future(stream.get(5))
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    hub.publish(GVID, None, "c", {"n": 1}, 1001)  # no reader: the frame waits
    frame = await stream.get(5)
    assert frame is not None
    assert b'"n":1' in frame


def test_a_frame_is_the_message_as_json_and_only_a_message_moves_the_replay_point():
    data = {"text": "Caf\u00e9 \u2028 </script>", "n": 9007199254740991, "x": [1.5, None]}
    frame = encode(42, "gpe.appendContent", data)
    assert frame.startswith(b"id: 42\nevent: message\ndata: ")
    assert frame.endswith(b"\n\n")
    assert json.loads(frame.split(b"data: ", 1)[1]) == {
        "id": 42,
        "channel": "gpe.appendContent",
        "data": data,
    }
    engaged = encode(0, "gpe.engaged", {})
    assert engaged == b'event: message\ndata: {"id":0,"channel":"gpe.engaged","data":{}}\n\n'

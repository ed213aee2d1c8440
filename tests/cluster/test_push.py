"""Push across nodes: two engines on one real Redis database, each page stream on one of them.

The tests read the SSE streams the way a browser's EventSource does and look at the Redis keys
themselves for the bound and the TTL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from engagement.api.state import HUB, REDIS
from engagement.app import create_app
from engagement.cluster.push import RedisHub, RemoteStream, channel_of, gap, keys_of
from engagement.cluster.redis import RedisLink
from engagement.notifications.hub import LocalHub
from engagement.settings import Settings

from ..conftest import AUTH, SITE, ClientFactory, Factory, post_events, url
from ..redis_cluster import redis_client
from .conftest import Cuttable, fewest_round_trips
from .test_two_nodes import until

Client = TestClient[Any, Any]
TTL_S = 60


class Page:
    """An EventSource: the frames of one stream, in order, with their SSE ids."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def next(self, timeout_s: float = 5) -> dict[str, Any]:
        """The next message (``sse_id`` added: None for frames without one); pings skipped."""
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self.response.content.readuntil(b"\n\n")
                fields = dict(
                    line.split(": ", 1) for line in raw.decode().strip().split("\n") if ": " in line
                )
                if "data" in fields:
                    data: dict[str, Any] = json.loads(fields["data"])
                    return {**data, "sse_id": fields.get("id")}

    async def quiet(self) -> None:
        """Nothing more is queued: the next thing on the stream is a heartbeat."""
        while True:
            raw = await asyncio.wait_for(self.response.content.readuntil(b"\n\n"), 5)
            if raw.startswith(b"retry:"):
                continue
            assert raw == b": ping\n\n", raw
            return


NODE = {"push_heartbeat_s": 0.3, "push_buffer_ttl_s": TTL_S}


@pytest.fixture
async def nodes(
    make_node: Callable[..., Awaitable[Client]], redis_url: str
) -> tuple[Client, Client]:
    return await make_node("a", redis_url, **NODE), await make_node("b", redis_url, **NODE)


async def open_page(node: Client, factory: Factory, since: int = 0, **headers: str) -> Page:
    query = {"visitID": factory.visit_id, "pageID": factory.page_id, "since": str(since)}
    r = await node.get(url(node, "stream", query), headers={"Origin": SITE, **headers})
    assert r.status == 200, await r.text()
    return Page(r)


async def notify(node: Client, factory: Factory, n: int) -> None:
    message = {"channel": "offer", "data": {"n": n}}
    r = await node.post(url(node, "notify", visitID=factory.visit_id), json=[message], headers=AUTH)
    assert r.status == 200, await r.text()


def message(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return frame["channel"], frame["data"]


async def test_a_notify_on_one_node_reaches_the_page_on_the_other(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    frame = await page.next()
    assert message(frame) == ("offer", {"n": 1})
    assert frame["sse_id"] == str(frame["id"])
    await page.quiet()
    metrics = await (await b.get(url(b, "metrics"))).text()
    assert "engagement_push_cross_node_total 1.0" in metrics
    assert "engagement_push_published_total 0.0" in metrics  # B published nothing itself
    assert "engagement_push_publish_seconds_count" in metrics


async def test_a_node_that_never_saw_the_visit_notifies_its_page(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())  # the visit's events and its stream: all on A
    page = await open_page(a, factory)
    message_for_page = {"page": factory.page_id, "channel": "offer", "data": {"n": 1}}
    r = await b.post(
        url(b, "notify", visitID=factory.visit_id), json=[message_for_page], headers=AUTH
    )
    assert r.status == 200, await r.text()
    assert message(await page.next()) == ("offer", {"n": 1})


async def test_a_notify_to_a_visit_held_here_costs_only_its_publication(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    sent = iter(range(1, 4))

    cost = await fewest_round_trips(a.app[REDIS], lambda: notify(a, factory, next(sent)))

    # The key's check and the publication: A's copy of the visit says it is live, so no
    # catch-up with its log first.
    assert cost == 2
    assert [message(await page.next()) for _ in range(3)] == [
        ("offer", {"n": 1}),
        ("offer", {"n": 2}),
        ("offer", {"n": 3}),
    ]


async def test_a_notify_to_a_page_entered_on_the_other_node_catches_up_first(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())  # A holds the visit...
    await post_events(b, factory.navigate(f"{SITE}/pricing", "Pricing"))  # ...B its new page
    page = await open_page(b, factory)
    message_for_page = {"page": factory.page_id, "channel": "offer", "data": {"n": 1}}

    r = await a.post(
        url(a, "notify", visitID=factory.visit_id), json=[message_for_page], headers=AUTH
    )

    assert r.status == 200, await r.text()  # not 404: A read the new page from the log
    assert message(await page.next()) == ("offer", {"n": 1})


async def test_a_page_back_on_another_node_gets_what_it_missed_once(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())
    first = await open_page(a, factory)
    await notify(a, factory, 1)
    seen = await first.next()
    first.response.close()  # the node (or the connection) goes away
    for n in (2, 3):
        await notify(a, factory, n)
    again = await open_page(b, factory, **{"Last-Event-ID": str(seen["id"])})
    replayed = [await again.next(), await again.next()]
    await notify(a, factory, 4)
    live = await again.next()
    await again.quiet()
    assert [message(f) for f in [*replayed, live]] == [("offer", {"n": n}) for n in (2, 3, 4)]
    ids = [seen["id"]] + [f["id"] for f in [*replayed, live]]
    assert ids == sorted(set(ids))  # increasing, none twice


async def test_publications_racing_the_replay_come_once_each(
    nodes: tuple[Client, Client], factory: Factory
):
    a, b = nodes
    await post_events(a, factory.start())
    count = 30
    sending = asyncio.gather(*(notify(a, factory, n) for n in range(count)))
    page = await open_page(b, factory)  # while they are being published
    await sending
    frames = [await page.next() for _ in range(count)]
    await page.quiet()
    assert sorted(f["data"]["n"] for f in frames) == list(range(count))
    ids = [f["id"] for f in frames]
    assert ids == sorted(set(ids))


async def test_a_burst_longer_than_the_bound_while_the_page_subscribes_comes_whole(
    redis_url: str,
):
    """Messages 1-5 arrived live while the page read its missed ones, and the bound (3) had
    trimmed 1 and 2 from the buffer by then: the page gets 1 to 5, in order, once each."""
    link = RedisLink(redis_url)
    hub = RedisHub(link, buffer_messages=3, ttl_s=TTL_S, max_streams_per_visit=5)
    stream = RemoteStream("V", "P", since=0)

    def frame(n: int) -> tuple[int, int, str, bytes]:
        return (100 + n, 101, "-", f"id: {100 + n}\n\n".encode())

    stream.pending = [frame(n) for n in range(1, 6)]
    hub._go_live(stream, [frame(n) for n in range(3, 6)], None, born=101)
    await link.close()

    assert stream.waiting() == tuple(frame(n)[3] for n in range(1, 6))


async def test_the_redis_buffer_is_bounded_and_expires(
    make_node: Callable[..., Awaitable[Client]], redis_url: str, factory: Factory
):
    a = await make_node("a", redis_url, push_buffer_messages=3, **NODE)
    await post_events(a, factory.start())
    page = await open_page(a, factory)
    for n in range(5):
        await notify(a, factory, n)
    ids = [(await page.next())["id"] for _ in range(5)]
    stream_key, meta_key = keys_of(factory.visit_id)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        entries = await redis.xrange(stream_key)
        assert [int(e[0].split(b"-")[0]) for e in entries] == ids[2:]
        assert 0 < await redis.ttl(stream_key) <= TTL_S
        assert 0 < await redis.ttl(meta_key) <= TTL_S
    finally:
        await redis.aclose()
    # Back after message 0: 1 was trimmed away, so the page hears that it missed something.
    late = await open_page(a, factory, **{"Last-Event-ID": str(ids[0])})
    told = await late.next()
    assert told == {
        "id": 0, "channel": "gpe.resync", "data": {"since": ids[0], "reason": "bound"},
        "sse_id": None,
    }  # fmt: skip
    assert [(await late.next())["data"]["n"] for _ in range(3)] == [2, 3, 4]
    # Back after message 1: everything after it is still there, so no word of a loss.
    fine = await open_page(a, factory, **{"Last-Event-ID": str(ids[1])})
    assert [(await fine.next())["data"]["n"] for _ in range(3)] == [2, 3, 4]
    await fine.quiet()


async def test_a_page_hears_when_redis_lost_its_buffer(
    nodes: tuple[Client, Client], factory: Factory, redis_url: str
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(a, factory)
    await notify(a, factory, 1)
    seen = await page.next()
    page.response.close()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.flushdb()  # as a Redis restarted without its data
    finally:
        await redis.aclose()
    back = await open_page(b, factory, **{"Last-Event-ID": str(seen["id"])})
    told = await back.next()
    assert message(told) == ("gpe.resync", {"since": seen["id"], "reason": "lost"})
    await notify(a, factory, 2)
    after = await back.next()
    assert message(after) == ("offer", {"n": 2})
    assert after["id"] > seen["id"]  # ids go on growing: the page does not skip it as seen


async def test_a_live_page_hears_when_its_buffer_vanished(
    nodes: tuple[Client, Client], factory: Factory, redis_url: str
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    seen = await page.next()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await redis.flushdb()  # keys gone (flushed, evicted) while the connections stay up
    finally:
        await redis.aclose()
    await notify(a, factory, 2)
    told, after = await page.next(), await page.next()
    assert message(told) == ("gpe.resync", {"since": seen["id"], "reason": "lost"})
    assert message(after) == ("offer", {"n": 2})
    await page.quiet()


async def test_a_visitor_s_export_and_erasure_reach_the_redis_buffer(
    nodes: tuple[Client, Client], factory: Factory, redis_url: str
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    sent = await page.next()
    r = await a.get(url(a, "visitor-export", globalVisitID=factory.global_visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    buffers = (await r.json())["live"]["pushBuffers"]
    assert buffers == {
        factory.visit_id: [
            {"id": sent["id"], "pageID": None, "channel": "offer", "data": {"n": 1},
             "createdAt": sent["id"]},
        ]
    }  # fmt: skip
    path = url(a, "visitor-erase", globalVisitID=factory.global_visit_id)
    r = await a.delete(path, headers=AUTH)
    assert r.status == 200, await r.text()
    rest = await asyncio.wait_for(page.response.content.read(), 5)
    assert b"data:" not in rest  # node B ended the page's stream, nothing more came
    redis = redis_client(redis_url)
    try:
        assert await redis.exists(*keys_of(factory.visit_id)) == 0
    finally:
        await redis.aclose()


async def test_without_redis_url_the_hub_is_in_process(
    aiohttp_client: ClientFactory, settings: Settings
):
    a = await aiohttp_client(create_app(settings))
    assert isinstance(a.app[HUB], LocalHub)


MINUTE_MS = 60_000


@pytest.mark.parametrize(
    ("since", "now", "top", "born", "trimmed", "expected"),
    [
        (0, 10 * MINUTE_MS, 0, 0, 0, None),  # a new page: nothing was promised
        (MINUTE_MS, MINUTE_MS + 5, 0, 0, 0, "lost"),  # no buffer though its TTL is not up
        (MINUTE_MS, 3 * MINUTE_MS, 0, 0, 0, None),  # no buffer: expired, nothing to replay
        (MINUTE_MS, MINUTE_MS + 9, MINUTE_MS - 3, MINUTE_MS - 9, 0, "lost"),  # went back in time
        (MINUTE_MS, MINUTE_MS + 9, MINUTE_MS + 8, MINUTE_MS + 7, 0, "lost"),  # reborn too soon
        (MINUTE_MS, 4 * MINUTE_MS, 4 * MINUTE_MS, 3 * MINUTE_MS, 0, None),  # reborn after TTL
        (MINUTE_MS, MINUTE_MS + 9, MINUTE_MS + 8, 5, MINUTE_MS + 2, "bound"),  # trimmed unseen
        (MINUTE_MS, MINUTE_MS + 9, MINUTE_MS + 8, 5, MINUTE_MS, None),  # trimmed: all seen
        (MINUTE_MS, MINUTE_MS + 9, MINUTE_MS + 8, 5, 0, None),  # all there
    ],
)
def test_gap(since: int, now: int, top: int, born: int, trimmed: int, expected: str | None):
    assert gap(since, now, top, born, trimmed, MINUTE_MS) == expected


async def test_a_node_cut_from_redis_catches_its_pages_up_when_it_is_back(
    make_node: Callable[..., Awaitable[Client]],
    redis_proxy: tuple[Cuttable, str],
    redis_url: str,
    factory: Factory,
):
    proxy, through = redis_proxy
    a = await make_node("a", redis_url, **NODE)
    b = await make_node("b", through, **NODE)  # B reaches Redis through a proxy we can cut
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    assert message(await page.next()) == ("offer", {"n": 1})

    await proxy.cut()  # B's pub/sub connection drops: what A publishes now does not reach B
    await notify(a, factory, 2)
    r = await b.post(
        url(b, "notify", visitID=factory.visit_id),
        json=[{"channel": "offer", "data": {"n": 0}}],
        headers=AUTH,
    )
    assert r.status == 503, await r.text()  # B cannot take a notification it cannot share
    await proxy.restore()

    # redis-py subscribes B again; B reads what its page missed from the buffer.
    assert message(await page.next(timeout_s=15)) == ("offer", {"n": 2})
    await notify(a, factory, 3)
    assert message(await page.next()) == ("offer", {"n": 3})
    await page.quiet()


async def test_a_node_leaves_the_channels_of_visits_it_no_longer_streams_to(
    nodes: tuple[Client, Client], factory: Factory, redis_url: str
):
    a, _ = nodes
    await post_events(a, factory.start())
    page = await open_page(a, factory)
    await notify(a, factory, 1)
    await page.next()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        [(_, listening)] = await redis.pubsub_numsub(channel_of(factory.visit_id))
        assert listening == 1
        page.response.close()

        async def left() -> bool:
            a.app[HUB].sweep(0)
            [(_, listening)] = await redis.pubsub_numsub(channel_of(factory.visit_id))
            return bool(listening == 0)

        await until(left, "node a unsubscribed the visit's channel")
    finally:
        await redis.aclose()

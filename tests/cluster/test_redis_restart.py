"""Redis goes away and comes back (empty, as the machine's Redis keeps nothing on disk): the
nodes answer 503 meanwhile, then reconnect and keep serving the visits they hold."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from engagement.api.state import LIFECYCLE, REGISTRY
from engagement.app import SHARED, WRITES
from engagement.cluster.claims import DEADLINES_KEY
from engagement.cluster.redis import visit_key
from engagement.cluster.visits import KEY_PARTS
from engagement.monitoring.ingest import now_ms

from ..conftest import SITE, Factory, post_events, url
from .conftest import Cuttable
from .test_two_nodes import INVITES, STRATEGIES

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]


async def test_nodes_answer_503_while_redis_is_gone_and_serve_again_when_it_is_back(
    make_node: MakeNode, redis_proxy: tuple[Cuttable, str], redis_url: str, factory: Factory
):
    proxy, through = redis_proxy
    a, b = await make_node("a", through), await make_node("b", through)
    await post_events(a, factory.start(f"{SITE}/", "Home"))
    await post_events(b, [factory.event("Look")])
    await a.app[SHARED].visit(factory.visit_id)  # a has seen what b logged (docs/cluster.md)

    await proxy.cut()
    r = await a.post(
        url(a, "events"), json={"events": [factory.event("Lost")]}, headers={"Origin": SITE}
    )
    assert r.status == 503, await r.text()
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["error"] == "state_unavailable"

    admin = aioredis.Redis.from_url(redis_url)
    await admin.flushdb()  # Redis restarted with nothing (no snapshot on this machine)
    await admin.aclose()
    await proxy.restore()

    await post_events(b, factory.navigate(f"{SITE}/pricing", "Pricing"))
    await post_events(a, [factory.event("AfterRestart")])
    for node in (a, b):
        await node.app[SHARED].visit(factory.visit_id)
    # Both nodes kept what they held and applied what came after, in the new log's order.
    views = []
    for node in (a, b):
        visit = node.app[REGISTRY].get(factory.visit_id)
        assert visit is not None
        views.append(
            (
                [p.url for p in visit.pages.values()],
                [e.event_name for e in visit.events if e.event_name != "PageEntered"],
            )
        )
    assert (
        views[0]
        == views[1]
        == (
            [f"{SITE}/", f"{SITE}/pricing"],
            ["Look", "AfterRestart"],
        )
    )


async def test_a_visit_idle_here_but_live_elsewhere_is_forgotten_not_closed(
    make_node: MakeNode, redis_url: str, factory: Factory, tmp_path: Path
):
    a, b = await make_node("a", redis_url), await make_node("b", redis_url)
    await post_events(a, factory.start())
    await post_events(b, [factory.event("Look")])
    timeout_ms = int(b.app[SHARED].ttl_ms)
    later = now_ms() + timeout_ms + 1000  # idle on this node, as far as it knows

    assert await b.app[SHARED].sweep(later) == 0  # its log lives on: a node may hold it
    assert b.app[REGISTRY].get(factory.visit_id) is None

    await post_events(b, [factory.event("Again")])  # seen again: rebuilt from the log
    visit = b.app[REGISTRY].get(factory.visit_id)
    assert visit is not None
    assert [e.event_name for e in visit.events] == ["PageEntered", "Look", "Again"]

    admin = aioredis.Redis.from_url(redis_url)  # idle everywhere: the log expired
    await admin.delete(*(visit_key(factory.visit_id, part) for part in KEY_PARTS))
    await admin.aclose()
    assert await b.app[SHARED].sweep(later) == 1
    assert b.app[REGISTRY].get(factory.visit_id) is None


async def test_after_redis_lost_everything_a_live_attempt_holds_its_visit_again(
    make_node: MakeNode, redis_url: str, factory: Factory, tmp_path: Path
):
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "cluster.yaml").write_text(STRATEGIES)
    a = await make_node("a", redis_url, invites_dir=INVITES)
    await post_events(a, factory.start())
    await post_events(a, [factory.event("Help")])
    [attempt] = a.app[LIFECYCLE].by_id.values()
    await a.app[WRITES].drain()  # the claim and deadline reached Redis ...
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.flushdb()  # ... and Redis restarted with nothing

        await post_events(a, [factory.event("Look")])
        await a.app[WRITES].drain()

        assert await admin.get(visit_key(factory.visit_id, "live")) == attempt.attempt_id.encode()
        member = f"{factory.visit_id} {attempt.attempt_id} offered"
        assert await admin.zscore(DEADLINES_KEY, member) is not None
    finally:
        await admin.aclose()


async def test_the_timers_say_once_that_redis_is_gone_and_when_they_are_back(
    make_node: MakeNode, redis_proxy: tuple[Cuttable, str], caplog: pytest.LogCaptureFixture
):
    proxy, through = redis_proxy
    await make_node("a", through)
    timers = "engagement.lifecycle.timers"

    def said(text: str) -> int:
        return sum(1 for r in caplog.records if r.name == timers and text in r.getMessage())

    async def until(text: str) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while not said(text):
            assert asyncio.get_running_loop().time() < deadline, f"never said {text!r}"
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger=timers):
        await proxy.cut()
        await until("engagement timers failed")
        await proxy.restore()
        await until("engagement timers back after")

    assert said("engagement timers failed") == 1  # not one traceback per tick


async def test_a_log_that_lost_its_last_entries_goes_on_from_its_end(
    make_node: MakeNode, redis_url: str, factory: Factory
):
    """A failover to a replica that had not received the master's last writes: the visit's log
    is shorter than what node a applied. Events logged after it are applied on every node (a
    node whose count ran ahead of the log took them for entries it had, and answered them as
    duplicates); what a applied of the lost entries stays in its copy."""
    a = await make_node("a", redis_url)
    await post_events(a, factory.start())
    lost = [factory.event("Lost1"), factory.event("Lost2")]
    await post_events(a, lost)
    admin = aioredis.Redis.from_url(redis_url)
    try:  # the replica never had them
        await admin.rpop(visit_key(factory.visit_id, "log"), 2)
        await admin.srem(visit_key(factory.visit_id, "ids"), *(e["eventID"] for e in lost))
    finally:
        await admin.aclose()

    assert await post_events(a, [factory.event("After")]) == {"accepted": 1, "duplicates": 0}
    b = await make_node("b", redis_url)
    await post_events(b, [factory.event("OnB")])
    await a.app[SHARED].visit(factory.visit_id)

    names = {
        node: [e.event_name for e in node.app[REGISTRY].get(factory.visit_id).events]
        for node in (a, b)
    }
    assert names == {
        a: ["PageEntered", "Lost1", "Lost2", "After", "OnB"],
        b: ["PageEntered", "After", "OnB"],
    }

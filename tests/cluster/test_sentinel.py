"""Nodes behind Redis Sentinel (``redis+sentinel://``): real master, replica and sentinel
processes (sentinels.py). The nodes serve one visit through the master the sentinel names,
and keep serving through a failover: a ``SENTINEL FAILOVER`` (the old master lives on and
takes writes until the sentinel demotes it) and a kill -9 of the master."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from engagement.api.state import REDIS
from engagement.app import SHARED
from engagement.cluster.redis import RedisLink, visit_key
from engagement.cluster.sentinel import SentinelUrl, parse_url
from engagement.cluster.wire import Wire

from ..conftest import AUTH, SITE, Factory, post_events, url
from .sentinels import DEADLINE_S, MASTER_NAME, Sentinels, role, until
from .test_push import Page, message, notify, open_page
from .test_two_nodes import state_of

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
NODE = {"push_heartbeat_s": 0.3}


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[Sentinels]:
    """Set up before the nodes (ask for it first), so that it stops after them."""
    servers = Sentinels(tmp_path / "redis")
    try:
        await servers.start()
        yield servers
    finally:
        await servers.stop()


async def logged_ids(port: int, visit_id: str) -> set[str]:
    """The eventIDs of the visit's log on the server at ``port`` (database 0)."""
    client = aioredis.Redis(port=port, socket_timeout=2, decode_responses=True)
    try:
        return set(await client.smembers(visit_key(visit_id, "ids")))  # type: ignore[misc]
    finally:
        await client.aclose()


async def accepted(node: Client, events: list[dict[str, Any]]) -> tuple[Any, int]:
    """Post ``events`` until the node takes them (503 while there is no master, as the tracker
    retries); the answer, and how many 503 came first."""
    refused = 0
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        r = await node.post(url(node, "events"), json={"events": events}, headers={"Origin": SITE})
        if r.status == 200:
            return await r.json(), refused
        assert r.status == 503, await r.text()
        assert (await r.json())["error"] == "state_unavailable"
        refused += 1
        assert asyncio.get_running_loop().time() < deadline, "the node never took the events"
        await asyncio.sleep(0.1)


async def both_take_events(a: Client, b: Client, factory: Factory, port: int) -> set[str]:
    """After a failover: an event through each node is taken (503s first, while there is no
    master), both nodes hold one visit state, and the server on ``port`` (the new master)
    logged both. The eventIDs it logged."""
    after = [factory.event("AfterFailover")]
    await accepted(a, after)
    again = [factory.event("AgainOnB")]
    await accepted(b, again)
    for node in (a, b):
        await node.app[SHARED].visit(factory.visit_id)
    assert state_of(a, factory.visit_id) == state_of(b, factory.visit_id)
    logged = await logged_ids(port, factory.visit_id)
    assert {after[0]["eventID"], again[0]["eventID"]} <= logged
    return logged


async def notified(node: Client, factory: Factory, n: int) -> None:
    """A notification the node takes (503 while there is no master)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    body = [{"channel": "offer", "data": {"n": n}}]
    while True:
        r = await node.post(url(node, "notify", visitID=factory.visit_id), json=body, headers=AUTH)
        if r.status == 200:
            return
        assert r.status == 503, await r.text()
        assert asyncio.get_running_loop().time() < deadline, "the node never took the notify"
        await asyncio.sleep(0.1)


async def ready(node: Client) -> dict[str, Any]:
    r = await node.get(url(node, "ready"))
    body: dict[str, Any] = await r.json()
    return body


async def until_ready(node: Client) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while (body := await ready(node))["status"] != "ready":
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)
    return body


async def serving(
    make_node: MakeNode, sentinels: Sentinels, factory: Factory, posted: list[dict[str, Any]]
) -> tuple[Client, Client, Page]:
    """Two nodes on the sentinel URL; a visit on both; its page's stream held on b."""
    a = await make_node("a", sentinels.url(), **NODE)
    b = await make_node("b", sentinels.url(), **NODE)
    posted += factory.start()
    await post_events(a, posted[-2:])
    posted.append(factory.event("Look"))
    await post_events(b, posted[-1:])
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    assert message(await page.next()) == ("offer", {"n": 1})
    return a, b, page


def test_the_url_names_sentinels_a_master_a_login_and_a_database():
    assert parse_url("redis+sentinel://u:p%40ss@10.0.0.1:26380,sentinel-b/cache/2") == (
        SentinelUrl((("10.0.0.1", 26380), ("sentinel-b", 26379)), "cache", "u", "p@ss", 2)
    )
    assert parse_url("redis+sentinel://:secret@s1:5000/cache") == (
        SentinelUrl((("s1", 5000),), "cache", None, "secret", 0)
    )
    for bad, said in [
        ("redis+sentinel://s1:26379", "names no master"),
        ("redis+sentinel://s1:26379/", "names no master"),
        ("redis+sentinel://s1:x/cache", "bad sentinel address 's1:x'"),
        ("redis+sentinel://s1/cache/two", "the database 'two' is not a number"),
    ]:
        with pytest.raises(ValueError, match=said):
            parse_url(bad)


async def test_two_nodes_behind_sentinel_serve_one_visit_through_the_master(
    sentinels: Sentinels, make_node: MakeNode, factory: Factory
):
    posted: list[dict[str, Any]] = []
    a, b, page = await serving(make_node, sentinels, factory, posted)
    posted += factory.navigate(f"{SITE}/pricing", "Pricing")
    await post_events(a, posted[-2:])
    for node in (a, b):
        await node.app[SHARED].visit(factory.visit_id)

    assert state_of(a, factory.visit_id) == state_of(b, factory.visit_id)
    logged = await logged_ids(sentinels.master.port, factory.visit_id)
    assert logged == {e["eventID"] for e in posted}
    await notify(b, factory, 2)  # and the other way: b publishes, its own page hears
    assert message(await page.next()) == ("offer", {"n": 2})
    for node in (a, b):
        assert (await ready(node))["checks"]["redis"] == "ok"


@pytest.mark.parametrize("how", ["SENTINEL FAILOVER", "kill -9 of the master"])
async def test_the_nodes_follow_a_failover(
    sentinels: Sentinels, make_node: MakeNode, factory: Factory, how: str
):
    a, b, page = await serving(make_node, sentinels, factory, [])
    old, new = sentinels.master, sentinels.replica

    if how == "SENTINEL FAILOVER":
        await sentinels.failover()
        assert await role(old.port) == "master"  # not demoted yet: it still takes writes
    else:
        await sentinels.replicated()  # the writes so far are not the ones a kill may lose
        await old.kill()
        await sentinels.switched()

    # Until a node hears the sentinel's +switch-master it may still write to the old master
    # (those writes are lost: docs/cluster.md, "Redis Sentinel").
    async def heard() -> bool:
        return all(node.app[REDIS].master_switches == 1 for node in (a, b))

    await until(heard, "both nodes heard the sentinel announce the new master")

    await both_take_events(a, b, factory, new.port)

    await notified(a, factory, 2)
    assert message(await page.next(timeout_s=DEADLINE_S)) == ("offer", {"n": 2})
    for node in (a, b):
        assert (await until_ready(node))["checks"]["redis"] == "ok"


async def test_a_replica_s_readonly_answer_makes_the_wire_connect_again(sentinels: Sentinels):
    """A server that turned replica answers writes READONLY: the command did not run, so the
    wire lets the connection go and connects again (under Sentinel, to the master named now);
    here the URL names the replica itself, so every try meets it and the request fails as a
    lost connection does (a 503 for the node's callers)."""
    stats = aioredis.Redis(port=sentinels.replica.port, decode_responses=True)
    wire = Wire(f"redis://127.0.0.1:{sentinels.replica.port}/0", timeout_s=2, retries=2)
    try:
        before = int((await stats.info("stats"))["total_connections_received"])
        with pytest.raises(RedisConnectionError, match="READONLY"):
            await wire.execute(("SET", "k", "v"))
        after = int((await stats.info("stats"))["total_connections_received"])
    finally:
        await wire.close()
        await stats.aclose()
    assert after - before == 3  # a connection for the first try and for each of two retries


async def test_redis_is_not_ready_when_the_server_is_a_replica(sentinels: Sentinels):
    link = RedisLink(f"redis://127.0.0.1:{sentinels.replica.port}/0")
    try:
        with pytest.raises(RedisConnectionError, match="is a replica now, not a master"):
            await link.ping()
    finally:
        await link.close()


async def test_a_dead_sentinel_is_asked_once_per_master_lookup(sentinels: Sentinels):
    """A sentinel that hangs up is asked once, then the next one: retrying it (redis-py's
    default, with ~1 s backoffs) held every master lookup, a node's start among them."""
    asked = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal asked
        asked += 1
        writer.transport.abort()

    dead = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = dead.sockets[0].getsockname()[1]
    live = f"127.0.0.1:{sentinels.sentinel.port}"
    link = RedisLink(f"redis+sentinel://127.0.0.1:{port},{live}/{MASTER_NAME}/0")
    try:
        await link.ping()
    finally:
        await link.close()
        dead.close()
        await dead.wait_closed()
    assert asked == 1

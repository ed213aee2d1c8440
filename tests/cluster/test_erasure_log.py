"""The erasure log: a node cut from Redis when a visitor is erased erases them when it is back,
and the log keeps its entries only as long as a node may still hold such a visit."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, REGISTRY
from engagement.api.visitors import RIGHTS
from engagement.cluster.redis import RedisLink
from engagement.privacy.cluster import LOG_KEY, SharedErasure

from ..conftest import AUTH, Factory, post_events, url
from ..test_privacy_rights import postgres_rows_naming
from .conftest import Cuttable
from .test_privacy_cluster import erasure_log, redis_holding
from .test_two_nodes import until

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
LOST = "erasure log unreachable"  # the listener's word when it lost its connection


def losses(caplog: pytest.LogCaptureFixture) -> Callable[[int], Callable[[], Awaitable[bool]]]:
    """``losses(caplog)(n)``: a check that the listener said ``n`` times it lost Redis."""

    def check(n: int) -> Callable[[], Awaitable[bool]]:
        async def said() -> bool:
            return caplog.text.count(LOST) == n

        return said

    return check


async def test_a_node_cut_from_redis_when_a_visitor_is_erased_erases_them_when_it_is_back(
    make_node: MakeNode,
    redis_proxy: tuple[Cuttable, str],
    redis_url: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
):
    proxy, through = redis_proxy
    a = await make_node("a", redis_url)
    b = await make_node("b", through)  # B reaches Redis through a proxy we can cut
    visitor = Factory()
    await post_events(b, visitor.start())
    await post_events(b, [visitor.event("UserInfo", {"email": "ada@example.com"})])
    await b.app[HISTORY].flush()
    needles = (visitor.visit_id, visitor.global_visit_id, "ada@example.com")

    await proxy.cut()  # B's connections drop: it cannot hear of the erasure now
    r = await a.delete(url(a, "visitor-erase", globalVisitID=visitor.global_visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    assert b.app[REGISTRY].get(visitor.visit_id) is not None  # B still holds the live visit
    await until(losses(caplog)(1), "node b's listener lost Redis")
    await proxy.restore()

    shared = b.app[RIGHTS].shared
    assert shared is not None

    async def forgotten() -> bool:
        return b.app[REGISTRY].get(visitor.visit_id) is None and shared.finished == 1

    await until(forgotten, "node b, back, dropped the visitor erased while it was cut")
    assert shared.told == 1
    await a.app[HISTORY].flush()
    await b.close()  # B stops, and writes what it still held
    assert await redis_holding(redis_url, *needles) == []
    assert await erasure_log(redis_url) == [
        {"globalVisitIDs": [visitor.global_visit_id], "visitIDs": [visitor.visit_id]}
    ]
    assert await postgres_rows_naming(database_url, *needles) == []


async def in_xread(admin: aioredis.Redis, redis_url: str) -> bool:
    """A client of the test's database waits in XREAD: a listener whose start is resolved."""
    db = redis_url.rsplit("/", 1)[-1]
    return any(c["cmd"] == "xread" and c["db"] == db for c in await admin.client_list())


async def test_the_erasure_log_is_trimmed_by_age(redis_url: str):
    """Entries older than visit_timeout_s and the margin go when an erasure is logged (whole
    nodes of the stream: ``MINID ~``); a recent one stays, however many there are."""
    link = RedisLink(redis_url)
    try:
        shared = SharedErasure(link, visit_timeout_s=60)
        seconds, micros = await link.client.time()
        now_ms = seconds * 1000 + micros // 1000
        keep_ms = int(shared.keep_s * 1000)
        entry = {"subject": json.dumps({"globalVisitIDs": ["g-old"], "visitIDs": ["v-old"]})}
        old = [f"{now_ms - keep_ms - 600_000 + i}-0" for i in range(300)]
        for entry_id in old:
            await link.client.xadd(LOG_KEY, entry, id=entry_id)
        recent = f"{now_ms - keep_ms + 60_000}-0"
        await link.client.xadd(LOG_KEY, entry, id=recent)

        await shared.erase({"globalVisitIDs": ["g-1"], "visitIDs": ["v-1"],
                            "identityIds": ["ada@example.com"]})  # fmt: skip

        ids = [i.decode() for i, _ in await link.client.xrange(LOG_KEY)]
        assert len([i for i in ids if i in old]) < 100  # at most one node of the stream's tree
        assert ids[-2] == recent
        assert (await erasure_log(redis_url))[-1] == {
            "globalVisitIDs": ["g-1"],
            "visitIDs": ["v-1"],
        }
    finally:
        await link.close()


async def test_the_listener_reads_every_erasure_it_missed_in_order(
    redis_proxy: tuple[Cuttable, str], redis_url: str, caplog: pytest.LogCaptureFixture
):
    """Cut once before anything was erased (the log does not exist yet), then while two
    erasures are logged: the listener, back, hears every one once, in order."""
    proxy, through = redis_proxy
    link, node = RedisLink(redis_url), RedisLink(through)  # node: cut from Redis at will
    admin = aioredis.Redis.from_url(redis_url)
    erasing, listening = SharedErasure(link, 60), SharedErasure(node, 60)
    heard: list[dict[str, list[str]]] = []

    async def told(subject: dict[str, list[str]]) -> None:
        heard.append(subject)

    async def reading() -> bool:
        return await in_xread(admin, redis_url)

    task = asyncio.create_task(listening.listen(told))
    try:
        await until(reading, "the listener reads the log")
        await proxy.cut()
        await until(losses(caplog)(1), "the listener lost Redis")
        await proxy.restore()
        await until(reading, "the listener, back, reads the log again")
        await erasing.erase(subject(1))
        await until(lambda: _eq(heard, [subject(1)]), "the first erasure heard")

        await proxy.cut()
        await erasing.erase(subject(2))
        await erasing.erase(subject(3))
        await until(losses(caplog)(2), "the listener lost Redis again")
        await proxy.restore()

        await until(lambda: _eq(heard, [subject(1), subject(2), subject(3)]), "all, in order")
        assert (listening.told, listening.finished) == (3, 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await admin.aclose()
        await link.close()
        await node.close()


def subject(n: int) -> dict[str, list[str]]:
    return {"globalVisitIDs": [f"g-{n}"], "visitIDs": [f"v-{n}"], "identityIds": []}


async def _eq(heard: list[dict[str, list[str]]], expected: list[dict[str, list[str]]]) -> bool:
    return heard == expected


async def test_a_listener_back_after_its_erasures_were_trimmed_says_so(
    redis_proxy: tuple[Cuttable, str], redis_url: str, caplog: pytest.LogCaptureFixture
):
    """An outage longer than the log keeps entries: the node cannot apply what it missed, and
    logs that those erasures must be repeated."""
    proxy, through = redis_proxy
    link, node = RedisLink(redis_url), RedisLink(through)
    erasing, listening = SharedErasure(link, 60), SharedErasure(node, 60)
    heard: list[dict[str, list[str]]] = []

    async def told(subject: dict[str, list[str]]) -> None:
        heard.append(subject)

    admin = aioredis.Redis.from_url(redis_url)

    async def reading() -> bool:
        return await in_xread(admin, redis_url)

    task = asyncio.create_task(listening.listen(told))
    try:
        await until(reading, "the listener reads the log")
        await erasing.erase(subject(1))
        await until(lambda: _eq(heard, [subject(1)]), "the first erasure heard")
        await proxy.cut()
        await until(losses(caplog)(1), "the listener lost Redis")
        await erasing.erase(subject(2))  # trimmed before the listener is back
        await erasing.erase(subject(3))
        [(newest, _)] = await link.client.xrevrange(LOG_KEY, count=1)
        await link.client.xtrim(LOG_KEY, minid=newest, approximate=False)  # all but the last
        await proxy.restore()

        async def said() -> bool:
            return "erasure log trimmed past" in caplog.text

        await until(said, "the listener said what it may have missed")
        await until(lambda: _eq(heard, [subject(1), subject(3)]), "what is left, heard")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await admin.aclose()
        await link.close()
        await node.close()


async def test_a_cancel_the_redis_client_swallows_still_stops_the_listener(redis_url: str):
    """redis-py may catch the cancel of a blocked read and answer as if the read had timed out:
    the listener stops all the same (a stopping node, and these tests, wait for it)."""
    link = RedisLink(redis_url)
    listening = SharedErasure(link, 60)
    reads, swallow = 0, True
    read = link.client.xread

    async def swallowing_xread(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        try:
            return await read(*args, **kwargs)
        except asyncio.CancelledError:
            if not swallow:
                raise
            return []  # as a client that caught the cancel and answered "nothing new"

    link.client.xread = swallowing_xread  # type: ignore[method-assign]

    async def told(subject: dict[str, list[str]]) -> None:
        pass

    task = asyncio.create_task(listening.listen(told))
    try:
        await until(lambda: _eq_int(reads, 1), "the listener blocks in XREAD")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done == {task}, "the listener went on reading after its cancel"
        assert task.cancelled()
    finally:
        swallow = False  # a listener left reading (the assertion failed) is stopped for good
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.close()


async def _eq_int(value: int, expected: int) -> bool:
    return value >= expected

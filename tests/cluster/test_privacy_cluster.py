"""A visitor's erasure with two nodes: no key left in Redis, no row in PostgreSQL, and the
visit gone from the other node's memory too."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, LIFECYCLE, REGISTRY
from engagement.api.visitors import RIGHTS
from engagement.privacy.cluster import LOG_KEY

from ..conftest import AUTH, SITE, Factory, new_id, post_events, url
from ..redis_cluster import redis_client
from ..test_privacy_rights import full_visitor, postgres_rows_naming

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
DEADLINE_S = 10  # a deadline to wait for the other node, not a timing assertion


async def erasure_log(redis_url: str) -> list[Any]:
    """What the erasure log holds: each entry's subject (kept on purpose, read separately)."""
    client = redis_client(redis_url)
    try:
        return [json.loads(fields[b"subject"]) for _, fields in await client.xrange(LOG_KEY)]
    finally:
        await client.aclose()


async def redis_naming(redis_url: str, *needles: str) -> list[str]:
    """Every key, and every member of a sorted set, holding one of ``needles``; but the
    erasure log."""
    client = redis_client(redis_url)
    try:
        found = []
        async for key in client.scan_iter():
            name = key.decode()
            if name == LOG_KEY:
                continue
            if any(n in name for n in needles):
                found.append(name)
            if await client.type(key) == b"zset":
                members = await client.zrange(key, 0, -1)
                found += [f"{name} {m.decode()}" for m in members
                          if any(n in m.decode() for n in needles)]  # fmt: skip
        return found
    finally:
        await client.aclose()


async def test_erasure_on_one_node_reaches_redis_postgresql_and_the_other_node(
    make_node: MakeNode, redis_url: str, database_url: str
):
    a = await make_node("a", redis_url)
    b = await make_node("b", redis_url)
    visitor = Factory()
    await post_events(a, visitor.start())
    await post_events(b, [visitor.event("UserInfo", {"email": "ada@example.com"})])
    assert b.app[REGISTRY].get(visitor.visit_id) is not None
    needles = (visitor.visit_id, visitor.global_visit_id, "ada@example.com")
    assert await redis_naming(redis_url, *needles) != []

    r = await a.delete(url(a, "visitor-erase", globalVisitID=visitor.global_visit_id), headers=AUTH)

    assert r.status == 200, await r.text()
    assert (await r.json())["live"]["redisKeys"] > 0
    deadline = time.monotonic() + DEADLINE_S
    told = b.app[RIGHTS].shared
    assert told is not None
    # Until b has handled the erasure whole: it forgets the visit first, then deletes the rows
    # it wrote meanwhile (a check after the forgetting alone found b's visit row still there).
    for _ in iter(lambda: time.monotonic() < deadline, False):  # until done, or the deadline
        if told.finished:
            break
        await asyncio.sleep(0.02)
    assert told.finished == 1
    assert b.app[REGISTRY].get(visitor.visit_id) is None  # the other node forgot it
    late = await post_events(b, [visitor.event("AddToCart", {"sku": "X"})])
    assert late["accepted"] == 0  # and drops what a tab still sends
    assert b.app[REGISTRY].get(visitor.visit_id) is None
    for node in (a, b):
        await node.app[HISTORY].flush()
    assert await redis_naming(redis_url, *needles) == []
    assert await erasure_log(redis_url) == [
        {"globalVisitIDs": [visitor.global_visit_id], "visitIDs": [visitor.visit_id]}
    ]
    assert await postgres_rows_naming(database_url, *needles) == []


async def test_a_link_token_issued_on_one_node_is_redeemed_on_the_other_once(
    make_node: MakeNode, redis_url: str
):
    shop, pay = "http://www.shop.test", "http://www.shop-pay.test"
    domains = {"linked_domains": ["shop.test", "shop-pay.test"], "allowed_origins": [shop, pay]}
    a = await make_node("a", redis_url, **domains)
    b = await make_node("b", redis_url, **domains)
    visitor = Factory()
    await post_events(a, visitor.start(shop + "/"), origin=shop)
    body = {"visitID": visitor.visit_id, "globalVisitID": visitor.global_visit_id}
    r = await a.post(url(a, "link-issue"), json=body, headers={"Origin": shop})
    assert r.status == 200, await r.text()
    token = (await r.json())["token"]

    r = await b.post(url(b, "link-redeem"), json={"token": token}, headers={"Origin": pay})

    assert r.status == 200, await r.text()
    assert (await r.json())["visitID"] == visitor.visit_id
    again = await a.post(url(a, "link-redeem"), json={"token": token}, headers={"Origin": pay})
    assert again.status == 409, await again.text()


async def redis_holding(redis_url: str, *needles: str) -> list[str]:
    """Every key whose name, or whose content (any type), holds one of ``needles``; but the
    erasure log."""
    client = redis_client(redis_url)
    try:
        found = []
        async for key in client.scan_iter():
            if key.decode() == LOG_KEY:
                continue
            kind = (await client.type(key)).decode()
            if kind == "string":
                content: Any = await client.get(key)
            elif kind == "hash":
                content = await client.hgetall(key)
            elif kind == "list":
                content = await client.lrange(key, 0, -1)
            elif kind == "set":
                content = await client.smembers(key)
            elif kind == "zset":
                content = await client.zrange(key, 0, -1)
            elif kind == "stream":
                content = await client.xrange(key)
            else:
                content = kind
            text = f"{key.decode()} {content!r}"
            if any(n in text for n in needles):
                found.append(text[:300])
        return found
    finally:
        await client.aclose()


async def test_erasing_a_full_visitor_on_the_other_node_leaves_no_key_value_row_or_memory(
    make_node: MakeNode, redis_url: str, database_url: str
):
    """A visitor who left something everywhere (an offered invitation and its push message, a
    conversion, a callback request and the limits counting it, a link token, a chat session)
    on node a, erased on node b: no Redis key names them nor holds them in its value."""
    shop = "http://www.shop.test"
    domains = {"linked_domains": ["shop.test"], "allowed_origins": [shop, SITE]}
    a = await make_node("a", redis_url, **domains)
    b = await make_node("b", redis_url, **domains)
    visitor = Factory()
    await full_visitor(a, visitor)
    ids = {"visitID": visitor.visit_id, "globalVisitID": visitor.global_visit_id}
    r = await a.post(url(a, "link-issue"), json=ids, headers={"Origin": shop})
    assert r.status == 200, await r.text()
    saved = {**ids, "key": new_id(), "data": {"sessionId": "S-1"}}
    r = await a.post(url(a, "chat-session-save"), json=saved, headers={"Origin": shop})
    assert r.status == 200, await r.text()
    needles = (visitor.visit_id, visitor.global_visit_id, "ada@example.com", "+33123456789")
    assert await redis_holding(redis_url, *needles) != []

    r = await b.delete(url(b, "visitor-erase", globalVisitID=visitor.global_visit_id),
                       headers=AUTH)  # fmt: skip

    assert r.status == 200, await r.text()
    deadline = time.monotonic() + DEADLINE_S
    told = a.app[RIGHTS].shared
    assert told is not None
    for _ in iter(lambda: time.monotonic() < deadline, False):  # until done, or the deadline
        if told.finished:
            break
        await asyncio.sleep(0.02)
    assert told.finished == 1
    assert await redis_holding(redis_url, *needles) == []
    logged = {"globalVisitIDs": [visitor.global_visit_id], "visitIDs": [visitor.visit_id]}
    assert await erasure_log(redis_url) == [logged]  # no identity, e-mail or phone number
    assert a.app[REGISTRY].get(visitor.visit_id) is None
    assert a.app[LIFECYCLE].by_id == {}
    for node in (a, b):
        await node.app[HISTORY].flush()
    assert await postgres_rows_naming(database_url, *needles) == []


async def test_a_link_token_is_issued_by_a_node_that_never_saw_the_visit(
    make_node: MakeNode, redis_url: str
):
    """No sticky sessions: the page's events went to node a, its link request reaches b."""
    shop = "http://www.shop.test"
    domains = {"linked_domains": ["shop.test", "shop-pay.test"], "allowed_origins": [shop]}
    a = await make_node("a", redis_url, **domains)
    b = await make_node("b", redis_url, **domains)
    visitor = Factory()
    await post_events(a, visitor.start(shop + "/"), origin=shop)
    body = {"visitID": visitor.visit_id, "globalVisitID": visitor.global_visit_id}

    r = await b.post(url(b, "link-issue"), json=body, headers={"Origin": shop})

    assert r.status == 200, await r.text()

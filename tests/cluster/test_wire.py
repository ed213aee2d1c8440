"""The hot path's multiplexed connection: answers in order, scripts, failures as redis-py's."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from engagement.cluster.redis import visit_key
from engagement.cluster.wire import Script, Wire

from .conftest import Cuttable

INCR = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")


def wire_for(url: str) -> Wire:
    wire = Wire(url, timeout_s=2.0, retries=3)
    wire.scripts[INCR.sha] = INCR.lua
    return wire


async def test_concurrent_requests_share_one_socket_and_get_their_own_answers(redis_url: str):
    wire = wire_for(redis_url)
    key = visit_key("wire", "n")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        answers = await asyncio.gather(
            *(
                wire.execute(INCR.call([key], [1]), ("GET", key), ("ECHO", f"{n}"))
                for n in range(200)
            )
        )
        assert sorted(a[0] for a in answers) == list(range(1, 201))
        assert all(a[2] == f"{n}".encode() for n, a in enumerate(answers))
        assert all(int(a[1]) >= a[0] for a in answers)  # each GET saw its own INCR at least
        assert await wire.execute() == []
        with pytest.raises(ResponseError):
            await wire.execute(("GET", key), ("HGET", key, "f"))  # wrong type: raised
        assert await wire.execute(("GET", key)) == [b"200"]  # the connection goes on
    finally:
        await admin.delete(key)
        await admin.aclose()
        await wire.close()


async def test_a_script_redis_forgot_is_loaded_again_and_only_what_did_not_run_is_sent_again(
    redis_url: str,
):
    # Redis "forgets" a script this connection believes loaded: one no other test loads (a
    # SCRIPT FLUSH would empty the cache of every suite sharing this Redis server).
    forgotten = Script(f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    wire = wire_for(redis_url)
    wire.scripts[forgotten.sha] = forgotten.lua
    key = visit_key("wire", "s")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        assert await wire.execute(("SET", key, 2)) == [b"OK"]
        wire._conn.loaded.add(forgotten.sha)  # type: ignore[union-attr]  # as after a restart
        answers = await wire.execute(("INCRBY", key, 10), forgotten.call([key], [2]), ("GET", key))
        # The INCRBY and the GET ran once, in the first round trip; the script, refused
        # there (NOSCRIPT), was loaded and ran in the second.
        assert answers == [12, 14, b"12"]
        assert await admin.get(key) == b"14"
    finally:
        await admin.delete(key)
        await admin.aclose()
        await wire.close()


async def test_a_dropped_connection_is_opened_again_and_an_outage_fails_the_request(
    redis_url: str, redis_proxy: tuple[Cuttable, str]
):
    proxy, through = redis_proxy
    wire = wire_for(through)
    try:
        assert await wire.execute(("PING",)) == [b"PONG"]
        await proxy.cut()
        with pytest.raises(RedisConnectionError):
            await wire.execute(("PING",))  # retried, backing off, then given up
        await proxy.restore()
        assert await wire.execute(("PING",)) == [b"PONG"]
    finally:
        await wire.close()

"""The node's pub/sub connection: bulk reads, replies split across reads, reconnection."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from engagement.cluster.resp import Incomplete, command, parse
from engagement.cluster.subscriber import Subscriber

from .conftest import Cuttable


def test_replies_split_anywhere_are_parsed_once_whole():
    message = b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$11\r\nhe\r\nllo\r\n!!\r\n"
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
    buf = message + confirmation
    for cut in range(1, len(message)):
        with pytest.raises(Incomplete):
            parse(buf[:cut], 0)
    value, pos = parse(buf, 0)
    assert value == [b"message", b"chan", b"he\r\nllo\r\n!!"]
    assert parse(buf, pos) == ([b"subscribe", b"chan", 1], len(buf))
    error, _ = parse(b"-NOAUTH Authentication required.\r\n", 0)
    assert isinstance(error, RedisError)
    assert parse(b"$-1\r\n", 0) == (None, 5)
    assert (
        command("SUBSCRIBE", "a", "bé")
        == b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$3\r\nb\xc3\xa9\r\n"
    )


async def test_a_burst_comes_whole_and_in_order_and_a_dropped_connection_subscribes_again(
    redis_url: str, redis_proxy: tuple[Cuttable, str]
):
    proxy, through = redis_proxy
    got: list[tuple[str, bytes]] = []
    confirmed: list[str] = []
    subscriber = Subscriber(through, lambda c, p: got.append((c, p)), confirmed.append)
    publisher = aioredis.Redis.from_url(redis_url)
    try:
        await subscriber.start("test:sub:a")
        await subscriber.subscribe("test:sub:b")
        async with asyncio.timeout(5):
            while len(confirmed) < 2:  # noqa: ASYNC110 - a bounded wait for the callbacks
                await asyncio.sleep(0.01)
        async with publisher.pipeline(transaction=False) as pipe:
            for n in range(500):
                pipe.publish("test:sub:a" if n % 2 else "test:sub:b", f"{n}".encode() * 50)
            await pipe.execute()
        async with asyncio.timeout(5):
            while len(got) < 500:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert [p for _, p in got] == [f"{n}".encode() * 50 for n in range(500)]
        assert {c for c, _ in got} == {"test:sub:a", "test:sub:b"}

        await proxy.cut()  # the connection drops, and Redis cannot be reached for a while
        await asyncio.sleep(0.3)
        await proxy.restore()
        async with asyncio.timeout(10):
            while len(confirmed) < 4:  # noqa: ASYNC110 - both channels confirmed again
                await asyncio.sleep(0.01)
        assert sorted(confirmed[2:]) == ["test:sub:a", "test:sub:b"]
        await publisher.publish("test:sub:a", b"after")
        async with asyncio.timeout(5):
            while got[-1][1] != b"after":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await subscriber.aclose()
        await publisher.aclose()

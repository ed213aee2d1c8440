"""Routing on a real Redis Cluster (tests/redis_cluster.py): slots, a request split by shard
and its answers in order, scripts on every shard, MOVED and ASK after a slot moved, seed
nodes. Sharded pub/sub: test_shard_pubsub.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import unused_port
from redis.exceptions import ResponseError

from engagement.cluster.redis import RedisLink, shared_key, visit_key
from engagement.cluster.shard_pubsub import ShardedSubscriber
from engagement.cluster.shards import (
    ClusterUrl,
    ClusterUrlError,
    ClusterWire,
    first_key,
    slot_of,
)

from ..redis_cluster import LocalCluster

INCR_BOTH = """
redis.call('INCR', KEYS[1])
return redis.call('INCR', KEYS[2])
"""


def keys_on_every_shard(cluster: LocalCluster) -> dict[int, str]:
    """A visit key per primary: port -> key."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(cluster.ports):
        key = visit_key(f"V{n}", "log")
        found.setdefault(cluster.primary_of(slot_of(key)), key)
        n += 1
    return found


@pytest.fixture
async def wire(cluster_url: str) -> AsyncIterator[ClusterWire]:
    wire = ClusterWire(cluster_url, 2.0, 3)
    yield wire
    await wire.close()


def test_a_key_s_slot_is_its_hash_tag_s():
    # The Redis Cluster specification's examples: CRC16 of the tag, modulo 16384.
    assert slot_of("foo") == 12182
    assert slot_of("{user1000}.following") == slot_of("{user1000}.followers") == slot_of("user1000")
    assert slot_of(visit_key("ABC", "log")) == slot_of(visit_key("ABC", "live")) == slot_of("ABC")
    assert slot_of(shared_key("limits", "rate:x")) == slot_of("limits")


def test_a_command_is_routed_by_its_first_key():
    assert first_key(("EVALSHA", "f" * 40, 2, "k1", "k2", "arg")) == "k1"
    assert first_key(("EVALSHA", "f" * 40, 0, "arg")) is None
    assert first_key(("GET", "k")) == "k"
    assert first_key(("PING",)) is None


def test_the_cluster_url_names_seeds_and_a_login():
    url = "redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001/"
    parsed = ClusterUrl.parse(url)
    assert parsed == ClusterUrl((("10.0.0.1", 7000), ("10.0.0.2", 7001)), "app", "s@cret")
    assert parsed.node_urls() == [
        "redis://app:s%40cret@10.0.0.1:7000",
        "redis://app:s%40cret@10.0.0.2:7001",
    ]
    assert ClusterUrl.parse("redis+cluster://:pw@h:1").node_url("h", 1) == "redis://:pw@h:1"
    assert ClusterUrl.parse("redis+cluster://h:1") == ClusterUrl((("h", 1),))


@pytest.mark.parametrize(
    "url", ["redis+cluster://h:1/0", "redis+cluster://h", "redis+cluster://", "redis://h:1"]
)
def test_a_cluster_url_with_a_database_or_no_port_is_refused(url: str):
    with pytest.raises(ClusterUrlError):
        ClusterUrl.parse(url)


async def test_a_request_is_split_by_shard_and_answered_in_order(
    wire: ClusterWire, redis_cluster: LocalCluster
):
    keys = keys_on_every_shard(redis_cluster)
    ordered = list(keys.values())
    commands = [("SET", key, f"v{i}") for i, key in enumerate(ordered)]
    commands += [("GET", key) for key in reversed(ordered)] + [("PING",)]

    answers = await wire.execute(*commands)

    assert answers == [b"OK"] * 3 + [f"v{i}".encode() for i in (2, 1, 0)] + [b"PONG"]
    for port, key in keys.items():  # each key went to the primary of its slot
        assert redis_cluster.node(port).get(key) == f"v{ordered.index(key)}".encode()
    assert len(set(wire.slots)) == 3


async def test_a_script_runs_on_every_shard_and_is_loaded_again_when_forgotten(
    cluster_url: str, redis_cluster: LocalCluster
):
    link = RedisLink(cluster_url)
    try:
        script = link.wire_script(INCR_BOTH)
        keys = list(keys_on_every_shard(redis_cluster).values())
        calls = [script.call([k, k.replace(":log", ":ids")], []) for k in keys]
        assert await link.send(*calls) == [1, 1, 1]
        for port in redis_cluster.ports:  # every node forgot its scripts (as a restart does)
            redis_cluster.node(port).script_flush()

        assert await link.send(*calls) == [2, 2, 2]
    finally:
        await link.close()


async def test_a_script_on_keys_of_two_slots_is_refused():
    # What every script of the engine avoids: its keys all carry one hash tag.
    assert slot_of(visit_key("A", "log")) != slot_of(visit_key("B", "log"))


async def test_a_slot_moved_to_another_shard_is_followed(
    wire: ClusterWire, redis_cluster: LocalCluster
):
    key = visit_key("MOVING", "log")
    slot = slot_of(key)
    await wire.execute(("SET", key, "here"))
    source = redis_cluster.primary_of(slot)
    target = next(p for p in redis_cluster.ports if p != source)
    loads = wire.refreshes
    redis_cluster.move_slot(slot, target)
    try:
        answers = await wire.execute(("GET", key), ("SET", key, "there"), ("GET", key))

        assert answers == [b"here", b"OK", b"there"]
        assert wire.slots[slot] == f"127.0.0.1:{target}"
        assert wire.refreshes > loads  # MOVED made it load the slot map again
        assert redis_cluster.node(target).get(key) == b"there"
    finally:
        redis_cluster.move_slot(slot, source)


async def test_a_key_of_a_slot_being_migrated_is_asked_for_on_its_new_shard(
    wire: ClusterWire, redis_cluster: LocalCluster
):
    key = visit_key("ASKED", "log")
    slot = slot_of(key)
    await wire.execute(("RPUSH", key, "a"))
    source = redis_cluster.primary_of(slot)
    target = next(p for p in redis_cluster.ports if p != source)
    redis_cluster.begin_move(slot, target)  # the key moved, the slot not yet
    try:
        answers = await wire.execute(("RPUSH", key, "b"), ("LRANGE", key, 0, -1))

        assert answers == [2, [b"a", b"b"]]
        assert wire.slots[slot] == f"127.0.0.1:{source}"  # ASK changes no map
        redis_cluster.end_move(slot, target)
        assert redis_cluster.node(target).lrange(key, 0, -1) == [b"a", b"b"]
    finally:
        if redis_cluster.primary_of(slot) != target:
            redis_cluster.end_move(slot, target)
        redis_cluster.move_slot(slot, source)


async def test_an_error_answer_is_raised_after_every_shard_answered(wire: ClusterWire):
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await wire.execute(("SET", "{a}x", "1"), ("LPUSH", "{a}x", "2"), ("SET", "{b}y", "1"))
    assert await wire.execute(("GET", "{b}y")) == [b"1"]


async def test_the_redis_py_client_pipelines_scripts_on_several_shards(
    cluster_url: str, redis_cluster: LocalCluster
):
    link = RedisLink(cluster_url)
    try:
        script = link.script(INCR_BOTH)
        keys = list(keys_on_every_shard(redis_cluster).values())
        for _ in range(2):  # the second time, the scripts are known to be loaded
            async with link.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    await script(keys=[key, key.replace(":log", ":ids")], client=pipe)
                pipe.get(keys[0])
                answers = await link.run(pipe.execute())
        assert answers == [2, 2, 2, b"2"]
        # Keys of several slots in one call: redis-py splits it by slot.
        assert await link.run(link.client.delete(*keys)) == 3
    finally:
        await link.close()


async def test_a_seed_that_does_not_answer_is_passed_over(
    cluster_url: str, redis_cluster: LocalCluster
):
    dead = unused_port()
    url = cluster_url.replace("redis+cluster://", f"redis+cluster://127.0.0.1:{dead},")
    link = RedisLink(url)
    subscribed = asyncio.Event()
    subscriber = ShardedSubscriber(url, lambda c, p: None, lambda c: subscribed.set())
    try:
        await link.connect()  # the slot map from the next seed
        assert await link.send(("SET", "{x}k", "1"), ("GET", "{x}k")) == [b"OK", b"1"]
        await subscriber.start(visit_key("SEEDS", "push"))
        await asyncio.wait_for(subscribed.wait(), 10)
    finally:
        await subscriber.aclose()
        await link.close()


async def test_a_primary_that_is_gone_is_replaced_by_what_the_map_says(
    cluster_url: str, redis_cluster: LocalCluster
):
    wire = ClusterWire(cluster_url, 2.0, 1)
    try:
        key = visit_key("GONE", "log")
        await wire.execute(("SET", key, "kept"))
        loads = wire.refreshes
        home = wire.slots[slot_of(key)]
        wire.slots[slot_of(key)] = f"127.0.0.1:{unused_port()}"  # as if its primary had gone

        assert await wire.execute(("GET", key)) == [b"kept"]

        assert wire.refreshes == loads + 1  # the connection was lost: the map read again
        assert wire.slots[slot_of(key)] == home
    finally:
        await wire.close()

"""Sharded pub/sub on a real Redis Cluster (tests/redis_cluster.py): a channel is subscribed
on its slot's shard, hears SPUBLISH there, and follows its slot when it moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engagement.cluster.redis import visit_key
from engagement.cluster.shard_pubsub import ShardedSubscriber
from engagement.cluster.shards import slot_of

from ..redis_cluster import LocalCluster

DEADLINE_S = 10  # a deadline for a state to be reached, not a timing assertion


class Heard:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.confirmed: list[str] = []

    def message(self, channel: str, payload: bytes) -> None:
        self.messages.append((channel, payload))

    def subscribed(self, channel: str) -> None:
        self.confirmed.append(channel)


async def until(check: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def heard(cluster_url: str) -> AsyncIterator[tuple[Heard, ShardedSubscriber]]:
    heard = Heard()
    subscriber = ShardedSubscriber(cluster_url, heard.message, heard.subscribed)
    yield heard, subscriber
    await subscriber.aclose()


def numsub(cluster: LocalCluster, port: int, channel: str) -> int:
    _, count = cluster.node(port).execute_command("PUBSUB", "SHARDNUMSUB", channel)
    return int(count)


async def test_a_channel_is_subscribed_on_its_shard_only(
    heard: tuple[Heard, ShardedSubscriber], redis_cluster: LocalCluster
):
    messages, subscriber = heard
    channel = visit_key("SHARDED", "push")
    home = redis_cluster.primary_of(slot_of(channel))

    await subscriber.start(channel)
    await until(lambda: messages.confirmed == [channel], "the subscription is confirmed")
    redis_cluster.node(home).execute_command("SPUBLISH", channel, b"hello")
    await until(lambda: messages.messages, "the message came")

    assert messages.messages == [(channel, b"hello")]
    assert [numsub(redis_cluster, p, channel) for p in redis_cluster.ports] == [
        int(p == home) for p in redis_cluster.ports
    ]


async def test_a_channel_follows_its_slot_to_another_shard(
    heard: tuple[Heard, ShardedSubscriber], redis_cluster: LocalCluster
):
    messages, subscriber = heard
    channel = visit_key("MOVINGPUSH", "push")
    slot = slot_of(channel)
    await subscriber.start(channel)
    await until(lambda: messages.confirmed == [channel], "the subscription is confirmed")
    source = redis_cluster.primary_of(slot)
    target = next(p for p in redis_cluster.ports if p != source)

    redis_cluster.move_slot(slot, target)  # Redis unsubscribes the slot's channels
    try:
        await until(lambda: len(messages.confirmed) == 2, "subscribed again on the new shard")
        redis_cluster.node(target).execute_command("SPUBLISH", channel, b"there")
        await until(lambda: messages.messages, "the message came")

        assert messages.messages == [(channel, b"there")]
        assert subscriber.where[channel] == f"127.0.0.1:{target}"
        assert numsub(redis_cluster, target, channel) == 1
    finally:
        redis_cluster.move_slot(slot, source)


async def test_a_shard_s_channels_of_several_slots_are_subscribed_again_after_a_drop(
    heard: tuple[Heard, ShardedSubscriber], redis_cluster: LocalCluster
):
    """A shard serves many slots: its connection, opened again, subscribes each channel by
    itself (one SSUBSCRIBE of channels of several slots is refused: CROSSSLOT)."""
    messages, subscriber = heard
    first = visit_key("DROPPED0", "push")
    home = redis_cluster.primary_of(slot_of(first))
    second = next(
        c
        for n in range(1, 1000)
        if redis_cluster.primary_of(slot_of(c := visit_key(f"DROPPED{n}", "push"))) == home
        and slot_of(c) != slot_of(first)
    )
    await subscriber.start(first, second)
    await until(lambda: sorted(messages.confirmed) == sorted([first, second]), "both confirmed")

    redis_cluster.node(home).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await until(lambda: len(messages.confirmed) == 4, "both subscribed again")
    for channel in (first, second):
        redis_cluster.node(home).execute_command("SPUBLISH", channel, b"after")
    await until(lambda: len(messages.messages) == 2, "both messages came")

    assert sorted(messages.messages) == sorted([(first, b"after"), (second, b"after")])


async def test_a_channel_refused_while_the_map_is_stale_is_asked_for_again(
    heard: tuple[Heard, ShardedSubscriber], redis_cluster: LocalCluster
):
    """While a slot changes hands, the map a node reads may still name the old primary, which
    now refuses the channel (MOVED): the node asks again until the map names the new one,
    instead of counting the refused channel as subscribed."""
    messages, subscriber = heard
    await subscriber.start()
    mapper = subscriber._map.slots[0]  # the node the subscriber reads its map from first
    channel, slot, source = next(
        (c, s, p)
        for n in range(1000)
        if (p := redis_cluster.primary_of(s := slot_of(c := visit_key(f"STALE{n}", "push"))))
        != int(mapper.rpartition(":")[2])
    )
    target = next(p for p in redis_cluster.ports if p not in (source,))
    await subscriber.subscribe(channel)
    await until(lambda: messages.confirmed == [channel], "the subscription is confirmed")

    # Only the old primary is told: it drops the channel and refuses it from now on, while
    # the node the map is read from still says it serves the slot.
    target_id = redis_cluster.node_id(target)
    rerouted = subscriber.reroutes
    redis_cluster.node(source).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    try:
        # Dropped, asked for again on the map's word, refused (MOVED), and asked again.
        await until(lambda: subscriber.reroutes >= rerouted + 2, "asked for again once refused")
        redis_cluster.end_move(slot, target)  # now every node says so
        await until(lambda: subscriber.where.get(channel) == f"127.0.0.1:{target}", "moved")
        await until(lambda: numsub(redis_cluster, target, channel) == 1, "subscribed there")
        redis_cluster.node(target).execute_command("SPUBLISH", channel, b"there")
        await until(lambda: messages.messages, "the message came")

        assert messages.messages == [(channel, b"there")]
    finally:
        redis_cluster.move_slot(slot, source)

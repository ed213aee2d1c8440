"""Pacing counters shared by two nodes through Redis: each sees the other's invitations in
flight, answers and what they taught, from its next pull (the pacing tick)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engagement.cluster.redis import RedisLink, WriteBehind
from engagement.pacing.model import Pending
from engagement.pacing.redis_counters import IN_FLIGHT_MAX_MS, RedisCounters

NOW = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[RedisCounters, RedisCounters, Clock]]:
    clock = Clock()
    links = [RedisLink(redis_url), RedisLink(redis_url)]
    writes = [WriteBehind(), WriteBehind()]
    a, b = (RedisCounters(link, w, clock) for link, w in zip(links, writes, strict=True))
    try:
        yield a, b, clock
    finally:
        for w, link in zip(writes, links, strict=True):
            await w.drain()
            await link.close()


async def settled(*nodes: RedisCounters) -> None:
    for node in nodes:
        await node.writes.drain()
    for node in nodes:
        await node.pull()


async def test_an_invitation_on_one_node_counts_on_the_other(
    nodes: tuple[RedisCounters, RedisCounters, Clock],
):
    a, b, _ = nodes
    before = b.pending("sales")

    assert a.invite("sales", "A1", 0.3, a.pending("sales").version)
    await settled(a, b)

    assert before == Pending((), 0, 0)
    assert b.pending("sales") == Pending((0.3,), 0, 1)
    # b planned on the version before a's invitation: its invitation must re-plan.
    assert not b.invite("sales", "B1", 0.3, before.version)


async def test_answers_and_connections_on_one_node_free_room_on_the_other(
    nodes: tuple[RedisCounters, RedisCounters, Clock],
):
    a, b, _ = nodes
    a.pending("sales")
    b.pending("sales")
    assert a.invite("sales", "A1", 0.3, 0)
    await settled(a, b)
    assert b.invite("sales", "B1", 0.5, b.pending("sales").version)
    await settled(a, b)

    b.answered("sales", "A1", "chat-me", True, 4.0)  # the page answered through b
    await settled(a, b)
    assert a.pending("sales") == Pending((0.5,), 1, 3)
    a.connected("sales", "A1")
    await settled(a, b)

    assert b.pending("sales") == Pending((0.5,), 0, 4)
    # What the answer taught is shared too (one answer, learnt once).
    assert a.acceptance("sales", "chat-me") == b.acceptance("sales", "chat-me")
    assert a.acceptance("sales", "chat-me").observations == pytest.approx(1.0)
    assert a.answer_time("sales").observations == pytest.approx(1.0)


async def test_invitations_a_dead_node_left_in_flight_leave_the_count(
    nodes: tuple[RedisCounters, RedisCounters, Clock],
):
    a, b, clock = nodes
    b.pending("sales")
    assert a.invite("sales", "A1", 0.3, a.pending("sales").version)
    await settled(a, b)
    assert b.pending("sales").invited == (0.3,)

    clock.ms += IN_FLIGHT_MAX_MS + 1  # a died: nobody will say A1 was answered
    await b.pull()

    assert b.pending("sales").invited == ()

"""An attempt's change reaches Redis before the request that made it answers, when the page's
next request may go to another node (``SharedAttemptStore.shared``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis

from engagement.attempts import Attempt, Origin, State
from engagement.cluster.attempts import SharedAttemptStore, decode
from engagement.cluster.redis import RedisLink, visit_key

from ..lifecycle.conftest import MemoryHistory


def offered() -> Attempt:
    a = Attempt("A1", "V1", "G1", "P1", "s", Origin.STRATEGY, "chat.html", "chat", {}, 30, 1_000)
    a.state = State.OFFERED
    a.transitions.append((State.OFFERED, 1_001, ""))
    return a


async def stored(redis_url: str, attempt: Attempt) -> State | None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        body = await client.hget(visit_key(attempt.visit_id, "attempts"), attempt.attempt_id)
    finally:
        await client.aclose()
    return None if body is None else decode(attempt.attempt_id, body).state


@pytest.fixture
async def link(redis_url: str) -> AsyncIterator[RedisLink]:
    link = RedisLink(redis_url)
    yield link
    await link.close()


async def test_a_write_queued_for_the_loop_turn_is_sent_at_once(redis_url: str, link: RedisLink):
    later: list[Coroutine[Any, Any, None]] = []  # the batched write, never run here
    store = SharedAttemptStore(MemoryHistory(), link, lambda coro, name: later.append(coro))
    attempt = offered()
    store.record_attempt(attempt)
    assert await stored(redis_url, attempt) is None  # queued, not written yet

    await store.shared(attempt)

    assert await stored(redis_url, attempt) is State.OFFERED
    for coro in later:
        await coro  # the batch finds nothing left to send
    assert link.round_trips == 1


async def test_a_write_on_its_way_is_awaited(redis_url: str, link: RedisLink):
    tasks: list[asyncio.Task[None]] = []
    store = SharedAttemptStore(
        MemoryHistory(), link, lambda coro, name: tasks.append(asyncio.create_task(coro))
    )
    attempt = offered()
    store.record_attempt(attempt)
    await asyncio.sleep(0)  # the batch has started its round trip
    assert not tasks[0].done()

    await store.shared(attempt)

    assert tasks[0].done()
    assert await stored(redis_url, attempt) is State.OFFERED

"""The engine's garbage-collection policy (engagement/gcpolicy.py) on the real collector."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from engagement.api.state import HISTORY, REGISTRY
from engagement.app import create_app
from engagement.gcpolicy import (
    FROZEN,
    THAW_GROWTH,
    THAW_GROWTH_MAX,
    THAW_MIN_INTERVAL_S,
    FrozenHeap,
    freeze_survivors,
    heap_blocks,
    keep_long_lived_frozen,
    thaw_and_collect,
    thaw_when_grown,
)
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import ClientFactory, Factory, post_events


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def tracked(obj: object) -> bool:
    """Whether a collection walks ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


@pytest.fixture
def policy() -> Iterator[None]:
    gc.callbacks.append(freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(freeze_survivors)
        gc.unfreeze()


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_a_pass_leaves_its_survivors_frozen(policy: None, generation: int) -> None:
    node = Node()
    assert tracked(node)
    gc.collect(generation)
    assert not tracked(node)
    assert gc.get_freeze_count() > 0


def test_young_garbage_is_collected_before_the_freeze(policy: None) -> None:
    node = Node()
    gone = weakref.ref(node)
    del node
    gc.collect(0)
    assert gone() is None


def test_a_cycle_frozen_alive_and_dropped_is_freed_at_the_thaw(policy: None) -> None:
    node = Node()
    gone = weakref.ref(node)
    gc.collect(0)  # survives: frozen
    del node
    gc.collect()  # a full pass does not walk frozen objects
    assert gone() is not None
    assert thaw_and_collect() > 0
    assert gone() is None


def test_without_the_policy_nothing_is_frozen() -> None:
    gc.unfreeze()
    node = Node()
    gc.collect(1)
    assert tracked(node)
    assert gc.get_freeze_count() == 0


async def test_a_young_pass_runs_on_the_clock_whatever_the_count() -> None:
    """A freed frozen object lowers the collector's count: under steady traffic the count
    alone may never start a pass while the young generation fills."""
    gc.unfreeze()
    gc.collect()
    passed = asyncio.Event()

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            passed.set()

    app = web.Application()
    app[FROZEN] = FrozenHeap()
    context = keep_long_lived_frozen(app)
    await anext(context)
    gc.callbacks.append(seen)
    try:
        node = Node()
        async with asyncio.timeout(5):
            await passed.wait()
        assert not tracked(node)  # the pass froze it
    finally:
        gc.callbacks.remove(seen)
        with contextlib.suppress(StopAsyncIteration):
            await anext(context)
        gc.unfreeze()


def test_a_thaw_waits_for_growth_and_for_the_interval() -> None:
    heap = FrozenHeap(baseline=1000, since=0.0)
    later = THAW_MIN_INTERVAL_S
    assert not heap.due(1250, later)  # 25 % more: not yet
    assert heap.due(1251, later)
    assert not heap.due(1251, later - 1)  # grown, but the last thaw was too recent


def test_growth_that_was_live_state_doubles_the_allowance_up_to_a_doubling() -> None:
    heap = FrozenHeap(baseline=1000, since=0.0)
    allowances = []
    for n in range(4):
        before = int(heap.baseline * (1 + heap.growth)) + 1
        heap.thawed(before, after=before - 10, collected=10, now=n * 4000.0, pause_s=0.1)
        allowances.append(heap.growth)
    assert allowances == [THAW_GROWTH * 2, THAW_GROWTH * 4, THAW_GROWTH_MAX, THAW_GROWTH_MAX]
    assert heap.thaws == 4
    assert heap.collected_total == 40


def test_growth_that_was_garbage_keeps_the_allowance() -> None:
    heap = FrozenHeap(baseline=1000, since=0.0, growth=THAW_GROWTH_MAX)
    heap.thawed(2001, after=1101, collected=900, now=4000.0, pause_s=0.1)
    assert heap.growth == THAW_GROWTH
    assert (heap.baseline, heap.since) == (1101, 4000.0)


def frozen_garbage(policy: None) -> weakref.ref[Node]:
    """A cycle frozen while alive, then dropped: only a thaw frees it."""
    node = Node()
    gone = weakref.ref(node)
    gc.collect(0)
    del node
    gc.collect()
    assert gone() is not None
    return gone


async def run_checks(heap: FrozenHeap, clock: float, rounds: int = 5) -> None:
    task = asyncio.create_task(thaw_when_grown(heap, 0.001, clock=lambda: clock))
    try:
        for _ in range(rounds * 20):
            await asyncio.sleep(0.001)
            if heap.thaws:
                return
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_frozen_garbage_is_freed_once_the_heap_grew(policy: None) -> None:
    gone = frozen_garbage(policy)
    heap = FrozenHeap(baseline=1, since=0.0)  # the whole heap is growth
    await run_checks(heap, clock=THAW_MIN_INTERVAL_S)
    assert gone() is None
    assert heap.thaws == 1
    assert heap.collected_total > 0
    assert heap.baseline == pytest.approx(heap_blocks(), rel=0.05)  # as the thaw left it
    assert heap.growth == THAW_GROWTH * 2  # the growth was mostly live: the allowance doubles


@pytest.mark.parametrize(
    ("grown", "clock"), [(False, THAW_MIN_INTERVAL_S), (True, THAW_MIN_INTERVAL_S - 1)]
)
async def test_no_thaw_without_growth_or_before_the_interval(
    policy: None, grown: bool, clock: float
) -> None:
    gone = frozen_garbage(policy)
    baseline = 1 if grown else heap_blocks()
    heap = FrozenHeap(baseline=baseline, since=0.0)
    await run_checks(heap, clock=clock)
    assert heap.thaws == 0
    assert gone() is not None  # still frozen, not walked


CHAT_ON_WANT = """
strategies:
  - name: chat-me
    when: {event: WantChat}
    offer: {invite: chat.html, media: chat}
"""


async def test_a_closed_visit_is_freed_without_the_collector(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
) -> None:
    """The freeze policy's premise: what the engine drops, reference counting frees. A cycle
    through a visit would keep every closed visit frozen until a thaw."""
    settings.strategies_dir.mkdir(exist_ok=True)
    (settings.strategies_dir / "chat.yaml").write_text(CHAT_ON_WANT)
    app = create_app(settings)
    client = await aiohttp_client(app)
    await post_events(client, factory.start())
    await post_events(client, [factory.event("WantChat")])  # an invitation: an attempt
    visit = app[REGISTRY].get(factory.visit_id)
    assert visit is not None
    assert visit.attempts
    ids = {id(visit), *(id(p) for p in visit.pages.values()), *(id(e) for e in visit.events)}
    del visit
    gc.collect()
    gc.disable()
    try:
        assert len(app[REGISTRY].close_idle(now_ms() + 10**9)) == 1
        await app[HISTORY].flush(final=True)  # the history held it until written
        assert not [o for o in gc.get_objects() if id(o) in ids]
    finally:
        gc.enable()

"""The engine's garbage-collection policy (engagement/gcpolicy.py) on the real collector."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiohttp import web

from engagement.gcpolicy import (
    freeze_survivors,
    keep_long_lived_frozen,
    thaw_and_collect,
)


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

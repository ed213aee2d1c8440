"""Garbage collection for a long-running server: long-lived objects out of the full passes.

A full collection walks every tracked object: with 20,000 live visits and 10,000 open push
streams that is ~900,000 objects and 0.5-1.7 s of stopped loop (bench/pauses.py). Even the
older young generation is costly at that heap: a generation-1 pass walks what survived ten
generation-0 passes, and each of their references into the big heap is a cache miss (20-50 ms
under traffic, measured). So after every pass (its garbage already gone) the survivors are
frozen (``gc.freeze``: moved to a generation no collection walks; O(1), a list splice). Every
pass then walks only what was allocated since the last one (< 1,000 objects), whatever the
number of live visits.

The collector starts a pass when allocations minus deallocations pass 700, and a frozen
object that is freed counts as a deallocation: a push stream's heartbeat wait frees the last
one's (frozen) future and timer as it makes new ones, so under steady traffic the count barely
moves while the young generation fills (4,000-35,000 objects per pass at 10,000 streams,
bench/pauses.py, 5-30 ms each). So a young pass also runs every ``YOUNG_EVERY_S`` whatever
the count says, and walks only what that much time allocated and kept.

Frozen objects are still freed by reference counting when dropped. A cycle frozen while alive
and dropped later waits for a thaw: everything is unfrozen and one full collection runs, the
one long pass the process makes (~0.5-0.7 s at 20,000 visits and 10,000 streams,
bench/pauses.py). So it runs only when it may pay, by CPython's own rule for a full pass: when
the heap is ``THAW_GROWTH`` larger than the last thaw left it, at most once per
``THAW_MIN_INTERVAL_S``. The heap is measured by ``sys.getallocatedblocks()`` (half a
millisecond at a million objects; ``gc.get_freeze_count()`` walks the frozen list: 30-100 ms).
Growth that was live state (more visits, more streams), not garbage, doubles the allowance for
the next thaw, up to the heap doubling. In steady traffic with nothing leaking, the engine
stops thawing; cycles that do leak bring the next thaw once they reach the allowance.
bench/pauses.py counts that garbage (32 objects after 5 s and after 20 s of notifications and
events at 20,000 visits and 10,000 streams: none accumulates) and times the pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

THAW_CHECK_S = 60.0  # how often the heap is measured (sys.getallocatedblocks(): no walk)
THAW_GROWTH = 0.25  # a thaw once the heap grew this much (CPython's rule for a full pass)
THAW_GROWTH_MAX = 1.0  # a thaw that finds little garbage doubles the allowance, up to this
THAW_MIN_INTERVAL_S = 3600.0  # never two thaws closer than this
THAW_PAID = 0.5  # a thaw "paid" when it freed at least this share of the growth
YOUNG_EVERY_S = 0.05  # a young pass at least this often: it walks what 50 ms allocated

log = logging.getLogger(__name__)


def heap_blocks() -> int:
    """The heap's size: memory blocks Python's allocator holds (O(arenas), not O(objects))."""
    return sys.getallocatedblocks()


@dataclass(slots=True)
class FrozenHeap:
    """When to thaw, and what thaws found (for /metrics and the log). Sizes in heap blocks."""

    baseline: int = 0  # the heap as the last thaw (or the start) left it
    since: float = 0.0  # when (time.monotonic())
    growth: float = THAW_GROWTH
    thaws: int = 0
    collected_total: int = 0  # unreachable objects the thaws found
    last_pause_s: float = 0.0

    @property
    def threshold(self) -> int:
        """The heap's size past which the next thaw is due."""
        return int(self.baseline * (1 + self.growth))

    def due(self, blocks: int, now: float) -> bool:
        return now - self.since >= THAW_MIN_INTERVAL_S and blocks > self.threshold

    def thawed(self, before: int, after: int, collected: int, now: float, pause_s: float) -> None:
        """A thaw took the heap from ``before`` to ``after`` blocks, finding ``collected``
        unreachable objects. Mostly garbage: the next thaw at the usual growth; mostly live
        state: at twice this one's."""
        grew = max(1, before - self.baseline)
        paid = before - after >= THAW_PAID * grew
        self.growth = THAW_GROWTH if paid else min(self.growth * 2, THAW_GROWTH_MAX)
        self.baseline, self.since = after, now
        self.thaws += 1
        self.collected_total += collected
        self.last_pause_s = pause_s


FROZEN = web.AppKey("frozen", FrozenHeap)


def install(app: web.Application) -> None:
    """The policy for ``engagement serve`` (its startup objects, once loaded, are frozen)."""
    app[FROZEN] = FrozenHeap(since=time.monotonic())
    app.on_startup.append(freeze_startup_objects)  # after every other startup step
    app.cleanup_ctx.append(keep_long_lived_frozen)


def freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A ``gc.callbacks`` entry: after every pass, freeze what survived it."""
    if phase == "stop":
        gc.freeze()


async def freeze_startup_objects(app: web.Application) -> None:
    """Modules, models and compiled strategies live as long as the process: the first
    baseline of the thaw's growth."""
    gc.collect()
    gc.freeze()
    app[FROZEN].baseline = heap_blocks()


async def keep_long_lived_frozen(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: survivors of every pass are frozen; a young pass every
    YOUNG_EVERY_S; all thawed when the frozen objects grew enough (FrozenHeap)."""
    gc.callbacks.append(freeze_survivors)
    tasks = [
        asyncio.create_task(thaw_when_grown(app[FROZEN], THAW_CHECK_S), name="gc-thaw"),
        asyncio.create_task(_collect_young_periodically(YOUNG_EVERY_S), name="gc-young"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(freeze_survivors)


async def thaw_when_grown(
    heap: FrozenHeap, every_s: float, clock: Callable[[], float] = time.monotonic
) -> None:
    while True:
        await asyncio.sleep(every_s)
        before = heap_blocks()
        if not heap.due(before, clock()):
            continue
        started = time.perf_counter()
        collected = thaw_and_collect()
        pause_s = time.perf_counter() - started
        heap.thawed(before, heap_blocks(), collected, clock(), pause_s)
        log.info(
            "gc: thawed a heap of %d blocks, %d unreachable objects (%.0f ms); the next thaw "
            "past %d blocks", before, collected, pause_s * 1e3, heap.threshold,
        )  # fmt: skip


async def _collect_young_periodically(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        gc.collect(0)


def thaw_and_collect() -> int:
    """Unfreeze everything and collect it once (then the callback freezes the survivors)."""
    gc.unfreeze()
    return gc.collect()

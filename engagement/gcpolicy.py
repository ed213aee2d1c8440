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
and dropped later waits for the thaw: every ``THAW_EVERY_S`` everything is unfrozen and one
full collection runs, the one long pass the process makes. bench/pauses.py counts that garbage
(none after 20 s of notifications and events at 20,000 visits and 10,000 streams) and times
the thaw's pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

THAW_EVERY_S = 3600.0  # once an hour, cycles that were frozen alive are collected
YOUNG_EVERY_S = 0.05  # a young pass at least this often: it walks what 50 ms allocated


def freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A ``gc.callbacks`` entry: after every pass, freeze what survived it."""
    if phase == "stop":
        gc.freeze()


async def freeze_startup_objects(app: web.Application) -> None:
    """Modules, models and compiled strategies live as long as the process."""
    gc.collect()
    gc.freeze()


async def keep_long_lived_frozen(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: survivors of every pass are frozen; a young pass every
    YOUNG_EVERY_S; all thawed every THAW_EVERY_S."""
    gc.callbacks.append(freeze_survivors)
    tasks = [
        asyncio.create_task(_thaw_periodically(THAW_EVERY_S), name="gc-thaw"),
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


async def _thaw_periodically(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        thaw_and_collect()


async def _collect_young_periodically(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        gc.collect(0)


def thaw_and_collect() -> int:
    """Unfreeze everything and collect it once (then the callback freezes the survivors)."""
    gc.unfreeze()
    return gc.collect()

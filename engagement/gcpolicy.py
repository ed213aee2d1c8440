"""Garbage collection for a long-running server: long-lived objects out of the full passes.

A full collection walks every tracked object: with 20,000 live visits and 10,000 open push
streams that is ~900,000 objects and 0.5-1.7 s of stopped loop (bench/pauses.py). Even the
older young generation is costly at that heap: a generation-1 pass walks what survived ten
generation-0 passes, and each of their references into the big heap is a cache miss (20-50 ms
under traffic, measured). So after every pass (its garbage already gone) the survivors are
frozen (``gc.freeze``: moved to a generation no collection walks; O(1), a list splice). Every
pass then walks only what was allocated since the last one (< 1,000 objects), whatever the
number of live visits.

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


def freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A ``gc.callbacks`` entry: after every pass, freeze what survived it."""
    if phase == "stop":
        gc.freeze()


async def freeze_startup_objects(app: web.Application) -> None:
    """Modules, models and compiled strategies live as long as the process."""
    gc.collect()
    gc.freeze()


async def keep_long_lived_frozen(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: survivors of every pass are frozen; all thawed every THAW_EVERY_S."""
    gc.callbacks.append(freeze_survivors)
    task = asyncio.create_task(_thaw_periodically(THAW_EVERY_S), name="gc-thaw")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(freeze_survivors)


async def _thaw_periodically(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        thaw_and_collect()


def thaw_and_collect() -> int:
    """Unfreeze everything and collect it once (then the callback freezes the survivors)."""
    gc.unfreeze()
    return gc.collect()

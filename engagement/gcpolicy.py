"""Garbage collection for a long-running server: long-lived objects out of the full passes.

A full collection walks every tracked object: with 20,000 live visits and 10,000 open push
streams that is ~900,000 objects and 0.5-1.7 s of stopped loop (bench/pauses.py). The visits'
state, open streams and kept events live for minutes; freezing them (``gc.freeze``: moved to a
generation no collection walks) leaves the full passes only what is younger. Frozen objects are
still freed by reference counting when dropped (bench/pauses.py found no cyclic garbage among
them after closing 10,000 streams); a cycle frozen while alive and dropped later would wait for
the next thaw, when everything is collectable again once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from aiohttp import web

FREEZE_EVERY_S = 60.0  # what lived a minute is long-lived
THAW_EVERY_S = 3600.0  # once an hour the next full pass walks everything (cycles frozen alive)


async def freeze_startup_objects(app: web.Application) -> None:
    """Modules, models and compiled strategies live as long as the process."""
    gc.collect()
    gc.freeze()


async def keep_long_lived_frozen(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: freezes what lived ``FREEZE_EVERY_S``, thaws every ``THAW_EVERY_S``."""
    task = asyncio.create_task(_freeze_periodically(FREEZE_EVERY_S, THAW_EVERY_S), name="gc")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _freeze_periodically(every_s: float, thaw_every_s: float) -> None:
    since_thaw = 0.0
    while True:
        await asyncio.sleep(every_s)
        since_thaw += every_s
        if since_thaw >= thaw_every_s:
            gc.unfreeze()
            since_thaw = 0.0
        else:
            gc.freeze()

"""The lifecycle owner's timer: dues of strategies and deadlines of attempts, on the clock."""

from __future__ import annotations

import asyncio
import logging

from .owner import Lifecycle

log = logging.getLogger(__name__)

TIMER_TICK_S = 0.25  # dues and deadlines are checked this often


async def run_timers(lifecycle: Lifecycle, tick_s: float = TIMER_TICK_S) -> None:
    while True:
        await asyncio.sleep(tick_s)
        try:
            lifecycle.tick()
        except Exception:
            log.exception("engagement timers failed")

"""The lifecycle owner's timer: dues of strategies and deadlines of attempts, on the clock."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .owner import Lifecycle

log = logging.getLogger(__name__)

TIMER_TICK_S = 0.25  # dues and deadlines are checked this often


class SharedSchedule(Protocol):
    """Several nodes: the dues of strategies, claimed from a schedule the nodes share."""

    async def tick(self, now: int) -> int: ...


async def run_timers(
    lifecycle: Lifecycle, tick_s: float = TIMER_TICK_S, shared: SharedSchedule | None = None
) -> None:
    while True:
        await asyncio.sleep(tick_s)
        try:
            if shared is None:
                lifecycle.tick()
            else:
                now = lifecycle.clock()
                await shared.tick(now)
                lifecycle.expire_due(now)
        except Exception:
            log.exception("engagement timers failed")

"""The lifecycle owner's timer: dues of strategies and deadlines of attempts, on the clock."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from .owner import Lifecycle

log = logging.getLogger(__name__)

TIMER_TICK_S = 0.25  # dues and deadlines are checked this often
FAILURE_LOG_EVERY_S = 30.0  # while ticks keep failing (Redis down), say so this often, not 4/s


class SharedSchedule(Protocol):
    """Several nodes: the dues of strategies, claimed from a schedule the nodes share."""

    async def tick(self, now: int) -> int: ...


async def run_timers(
    lifecycle: Lifecycle, tick_s: float = TIMER_TICK_S, shared: SharedSchedule | None = None
) -> None:
    failing_since: float | None = None
    last_said = 0.0
    me = asyncio.current_task()
    while True:
        if me is not None and me.cancelling():
            # A cancel the client library caught and did not raise again (a call that
            # returned instead) still stops the loop, or a stopping node would wait for it.
            raise asyncio.CancelledError
        await asyncio.sleep(tick_s)
        try:
            if shared is None:
                lifecycle.tick()
            else:
                now = lifecycle.clock()
                await shared.tick(now)
                lifecycle.expire_due(now)
        except Exception as exc:
            if me is not None and me.cancelling():
                # redis-py can turn the cancel of a call into a connection error: stopping
                # must still stop (the loop would otherwise tick for ever).
                raise asyncio.CancelledError from exc
            moment = time.monotonic()
            if failing_since is None:
                failing_since = last_said = moment
                log.exception("engagement timers failed")
            elif moment - last_said >= FAILURE_LOG_EVERY_S:
                last_said = moment
                log.error("engagement timers failing for %.0f s: %s", moment - failing_since, exc)
        else:
            if failing_since is not None:
                log.info("engagement timers back after %.1f s", time.monotonic() - failing_since)
                failing_since = None

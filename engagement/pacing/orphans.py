"""Invitations another node left in flight: let go once their attempts have ended.

Only the node that released an invitation follows its answer (pacer.py); with several nodes
the counts in flight live in Redis (redis_counters.py). When that node stops or dies, nobody
would tell the counters that the invitation was answered or connected, and the group's room
would stay taken until ``IN_FLIGHT_MAX_MS`` (an hour). So every ``CHECK_EVERY_MS`` each node
looks at the invitations counted in flight that it does not follow, reads their attempts (every
node writes them through to Redis), and follows those that ended more than ``GRACE_MS`` ago:
long enough for a live node that follows them to have counted them itself. Counting one twice
is harmless: the counters' scripts take an answer and a connection once, cluster-wide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..attempts import Attempt
from .pacer import IN_FLIGHT, Pacer
from .redis_counters import RedisCounters

log = logging.getLogger(__name__)

CHECK_EVERY_MS = 5_000
GRACE_MS = 10_000  # several pacing ticks: a live node counts its own by then


class Orphans:
    def __init__(
        self,
        counters: RedisCounters,
        pacer: Pacer,
        adopt: Callable[[Attempt], Attempt],
        clock: Callable[[], int],
    ) -> None:
        self.counters, self.pacer, self.adopt, self.clock = counters, pacer, adopt, clock
        self._checked = 0

    async def pull(self) -> None:
        """Follow the ended invitations nobody counted (a pacing tick's pull, after the
        counters' own)."""
        now = self.clock()
        if now - self._checked < CHECK_EVERY_MS:
            return
        self._checked = now
        adopted = 0
        for stray in await self.counters.strays(self.pacer.followed()):
            a = stray.attempt  # None: its record is gone (IN_FLIGHT_MAX_MS lets it go)
            if (
                a is not None
                and a.state not in IN_FLIGHT
                and now - a.transitions[-1][1] >= GRACE_MS
            ):
                self.pacer.follow(stray.group, self.adopt(a), stray.answered)
                adopted += 1
        if adopted:
            log.info("pacing: following %d invitations another node left counted", adopted)

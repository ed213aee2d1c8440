"""Time-based conditions across nodes: one schedule of due times in Redis, each due claimed
by exactly one node (the script that reads the ripe ones removes them in the same step)."""

from __future__ import annotations

import logging

from ..lifecycle.owner import Lifecycle
from .claims import DEADLINES_KEY
from .redis import RedisLink, shared_key
from .visits import SharedVisits

log = logging.getLogger(__name__)

DUES_PER_CLAIM = 200  # ripe dues one node takes per tick; the rest wait for the next tick
SCHEDULE_KEY = shared_key("dues", "schedule")  # members "visitID strategy", scored by due ms

_CLAIM = """
local ripe = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #ripe > 0 then redis.call('ZREM', KEYS[1], unpack(ripe)) end
return ripe
"""


class SharedDues:
    """The engine's dues go to the shared schedule; the timer claims and decides ripe ones."""

    def __init__(self, link: RedisLink, visits: SharedVisits, lifecycle: Lifecycle) -> None:
        self.link = link
        self.visits = visits
        self.lifecycle = lifecycle
        self._claim = link.script(_CLAIM)
        self.claimed_total = 0

    async def publish(self) -> None:
        """Move the dues the engine scheduled since the last call to the shared schedule."""
        taken = self.lifecycle.engine.take_dues()
        if taken:
            mapping = {f"{visit_id} {name}": due for visit_id, name, due in taken}
            await self.link.run(self.link.client.zadd(SCHEDULE_KEY, mapping))

    async def tick(self, now: int) -> int:
        """Claim the ripe dues and deadlines (one round trip), ask the dues' strategies again
        and end the attempts still where their deadline found them; how many were claimed."""
        await self.publish()
        async with self.link.client.pipeline(transaction=False) as pipe:
            for key in (SCHEDULE_KEY, DEADLINES_KEY):
                await self._claim(keys=[key], args=[now, DUES_PER_CLAIM], client=pipe)
            dues, deadlines = await self.link.run(pipe.execute())
        by_visit: dict[str, list[str]] = {}
        for member in dues:
            visit_id, _, name = member.decode().partition(" ")
            by_visit.setdefault(visit_id, []).append(name)
        strategies = self.lifecycle.engine.strategies.by_name
        for visit_id, names in by_visit.items():
            visit = await self.visits.visit(visit_id)
            found = [strategies[n] for n in names if n in strategies]
            if visit is not None and found:
                await self.lifecycle.start_due(visit, found, now)
        self.claimed_total += len(dues)
        await self.publish()
        await self._expire(deadlines, now)
        return len(dues) + len(deadlines)

    async def _expire(self, deadlines: list[bytes], now: int) -> None:
        lifecycle = self.lifecycle
        for member in deadlines:
            visit_id, attempt_id, state = member.decode().split(" ")
            await self.visits.visit(visit_id)  # the attempt as the other nodes left it
            attempt = lifecycle.by_id.get(attempt_id)
            if attempt is not None and attempt.state.value == state:
                lifecycle.expire(attempt, now)

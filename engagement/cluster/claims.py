"""Strict mode across nodes: one key per visit names its live attempt, until its deadline;
and the deadlines of live attempts in one schedule any node may claim (see ``dues``)."""

from __future__ import annotations

from collections.abc import Callable

from ..attempts import Attempt
from .redis import RedisLink, WriteBehind, shared_key, visit_key

DEADLINES_KEY = shared_key("deadlines", "schedule")  # "visitID attemptID state", by deadline ms
MIN_CLAIM_MS = 1000  # a deadline already past still holds the visit this long (clock skew)

# Compare-and-set: only the attempt that holds the visit extends or frees it.
# A claim lost with Redis's data is taken again by its attempt (nobody else holds it then).
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisClaims:
    """``LiveClaims`` on Redis: ``eng:{visitID}:live`` = attemptID, expiring at its deadline."""

    def __init__(self, link: RedisLink, clock: Callable[[], int], writes: WriteBehind) -> None:
        self.link = link
        self.clock = clock
        self.writes = writes
        self._hold = link.script(_HOLD)
        self._release = link.script(_RELEASE)
        self.refused = 0  # claims another attempt held: strict mode across nodes at work

    def _ttl_ms(self, until_ms: int) -> int:
        return max(MIN_CLAIM_MS, until_ms - self.clock())

    async def claim(self, visit_id: str, attempt_id: str, until_ms: int) -> bool:
        key = visit_key(visit_id, "live")
        taken = await self.link.run(
            self.link.client.set(key, attempt_id, nx=True, px=self._ttl_ms(until_ms))
        )
        if not taken:
            self.refused += 1
        return bool(taken)

    def hold(self, attempt: Attempt, until_ms: int) -> None:
        self.writes.spawn(self._held(attempt, until_ms), f"hold-{attempt.attempt_id}")

    def release(self, visit_id: str, attempt_id: str) -> None:
        self.writes.spawn(self._released(visit_id, attempt_id), f"release-{attempt_id}")

    async def _held(self, attempt: Attempt, until_ms: int) -> None:
        keys = [visit_key(attempt.visit_id, "live")]
        member = f"{attempt.visit_id} {attempt.attempt_id} {attempt.state.value}"
        async with self.link.client.pipeline(transaction=False) as pipe:
            await self._hold(
                keys=keys, args=[attempt.attempt_id, self._ttl_ms(until_ms)], client=pipe
            )
            pipe.zadd(DEADLINES_KEY, {member: until_ms})
            await self.link.run(pipe.execute())

    async def _released(self, visit_id: str, attempt_id: str) -> None:
        await self.link.run(self._release(keys=[visit_key(visit_id, "live")], args=[attempt_id]))

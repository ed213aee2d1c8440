"""Rate limits and lock-outs against abuse, behind two small Protocols.

``RateLimiter`` is GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp
per key, as redis-cell and Cloudflare's limiters do): ``count`` requests may come in a burst,
then one every ``period_s / count``. One float per key keeps memory flat, and the same check
is one Lua script on Redis when several nodes share the limits. ``FailureLock`` delays an
address exponentially after repeated failures (wrong API keys).

The in-process implementations hold a bounded number of keys: expired ones are swept when the
table fills, then the oldest go (an attacker flooding keys meets the overall limit first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .cluster.redis import RedisLink, shared_key

MAX_KEYS = 100_000  # per table: ~10 MB at most; far more than honest clients in a window
RATE_UNITS_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$")


class RateError(ValueError):
    """A rate that does not read as ``<count>/<second|minute|hour|day>``."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` requests per ``period_s``, all at once or spread out."""

    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = RATE_PATTERN.match(text)
        if match is None or int(match[1]) < 1:
            raise RateError(f"{text!r} is not a rate such as '5/hour' (1 or more per unit)")
        return cls(int(match[1]), RATE_UNITS_S[match[2]])

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which limit refused, and when to come back."""

    key: str
    retry_after_s: float


class RateLimiter(Protocol):
    async def acquire(self, limits: Sequence[tuple[str, Rate]], now_s: float) -> Refusal | None:
        """Count one request against every ``(key, rate)``, or none of them if one refuses."""
        ...


@runtime_checkable
class ForgetsKeys(Protocol):
    """A limiter that can show and drop one visitor's counts (a visitor's rights)."""

    async def forget(self, keys: Iterable[str]) -> int: ...

    async def counted(self, keys: Iterable[str]) -> list[str]: ...


class FailureLock(Protocol):
    async def locked_for(self, key: str, now_s: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        ...

    async def failed(self, key: str, now_s: float) -> float:
        """Count a failure; the lock it earns, in seconds (0: none yet)."""
        ...

    async def admit(self, key: str, now_s: float) -> float:
        """A right key from ``key``: seconds of its lock-out left (refused), or 0: admitted,
        and its failures are forgotten. One step, so that shared it is one round trip."""
        ...


def _make_room(table: dict[str, float], now_s: float) -> list[str]:
    """When full, drop expired entries, and if that is not enough the oldest tenth."""
    if len(table) < MAX_KEYS:
        return []
    gone = [k for k, until in table.items() if until <= now_s]
    if len(table) - len(gone) >= MAX_KEYS:
        gone = list(table)[: MAX_KEYS // 10]
    for key in gone:
        del table[key]
    return gone


class MemoryRateLimiter:
    """GCRA in one process: the theoretical arrival time of the next request, per key."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._tat)

    async def acquire(self, limits: Sequence[tuple[str, Rate]], now_s: float) -> Refusal | None:
        updates: list[tuple[str, float]] = []
        for key, rate in limits:
            tat = max(self._tat.get(key, now_s), now_s)
            new_tat = tat + rate.interval_s
            allowed_at = new_tat - rate.period_s
            if allowed_at > now_s:
                return Refusal(key, allowed_at - now_s)
            updates.append((key, new_tat))
        _make_room(self._tat, now_s)
        for key, new_tat in updates:
            self._tat.pop(key, None)  # re-inserted last: dict order is least recently used
            self._tat[key] = new_tat
        return None

    async def forget(self, keys: Iterable[str]) -> int:
        """A visitor's erasure: their counts (keys such as ``callback_visitor:<id>``) go."""
        return sum(self._tat.pop(key, None) is not None for key in keys)

    async def counted(self, keys: Iterable[str]) -> list[str]:
        """Which of ``keys`` are counted now (a visitor's export)."""
        return [key for key in keys if key in self._tat]


@dataclass(slots=True)
class _Failures:
    count: int
    locked_until_s: float
    last_s: float


class MemoryFailureLock:
    """``free`` failures pass; each one after locks for ``base_s``, doubling up to ``max_s``.
    An address that fails nothing for ``forget_after_s`` starts over."""

    def __init__(self, free: int, base_s: float, max_s: float, forget_after_s: float) -> None:
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self.forget_after_s = forget_after_s
        self._by_key: dict[str, _Failures] = {}
        self._expiry: dict[str, float] = {}  # when an entry may be forgotten, for _make_room

    def __len__(self) -> int:
        return len(self._by_key)

    def _current(self, key: str, now_s: float) -> _Failures | None:
        entry = self._by_key.get(key)
        if entry is not None and now_s - entry.last_s > self.forget_after_s:
            del self._by_key[key]
            self._expiry.pop(key, None)
            return None
        return entry

    async def locked_for(self, key: str, now_s: float) -> float:
        entry = self._current(key, now_s)
        return max(0.0, entry.locked_until_s - now_s) if entry else 0.0

    async def failed(self, key: str, now_s: float) -> float:
        entry = self._current(key, now_s)
        if entry is None:
            for gone in _make_room(self._expiry, now_s):
                self._by_key.pop(gone, None)
            entry = self._by_key[key] = _Failures(0, 0.0, now_s)
        entry.count += 1
        entry.last_s = now_s
        lock_s = 0.0
        if entry.count > self.free:
            lock_s = min(self.base_s * 2 ** (entry.count - self.free - 1), self.max_s)
            entry.locked_until_s = now_s + lock_s
        self._expiry[key] = max(entry.locked_until_s, now_s + self.forget_after_s)
        return lock_s

    async def admit(self, key: str, now_s: float) -> float:
        wait_s = await self.locked_for(key, now_s)
        if wait_s == 0:
            self._by_key.pop(key, None)
            self._expiry.pop(key, None)
        return wait_s


# -- shared by several nodes: the same checks as Lua scripts on Redis --

# GCRA over every key at once: all pass (each theoretical arrival time moves on) or none does.
# Times are strings both ways: Redis would cut a Lua number to an integer.
_GCRA = """
local now = tonumber(ARGV[1])
local news = {}
for i, key in ipairs(KEYS) do
  local interval, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or ARGV[1])
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - period > now then return {i, tostring(new_tat - period - now)} end
  news[i] = new_tat
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.6f', news[i]), 'PX', math.ceil((news[i] - now) * 1000))
end
return {0, '0'}
"""

_FAILED = """
local now, free = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local lock = 0
if count > free then
  lock = math.min(base * 2 ^ (count - free - 1), max)
  redis.call('HSET', KEYS[1], 'until', string.format('%.6f', now + lock))
end
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(lock, tonumber(ARGV[5])) * 1000))
return string.format('%.6f', lock)
"""

# A right key: the lock-out left (refused), or '0' and the address's failures are forgotten.
_ADMIT = """
local left = tonumber(redis.call('HGET', KEYS[1], 'until') or '0') - tonumber(ARGV[1])
if left > 0 then return string.format('%.6f', left) end
redis.call('DEL', KEYS[1])
return '0'
"""

LIMITS_TAG = "limits"  # one hash slot for every limit: a request's limits are checked together


class RedisRateLimiter:
    """GCRA shared by every node: one script per request, keys expiring with their bucket."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._gcra = link.script(_GCRA)

    async def acquire(self, limits: Sequence[tuple[str, Rate]], now_s: float) -> Refusal | None:
        keys = [shared_key(LIMITS_TAG, f"rate:{key}") for key, _ in limits]
        args: list[float] = [now_s]
        for _, rate in limits:
            args += [rate.interval_s, rate.period_s]
        index, wait = await self.link.run(self._gcra(keys=keys, args=args))
        if int(index) == 0:
            return None
        return Refusal(limits[int(index) - 1][0], float(wait))

    async def forget(self, keys: Iterable[str]) -> int:
        """A visitor's erasure: their counts go, for every node."""
        names = [shared_key(LIMITS_TAG, f"rate:{key}") for key in keys]
        return int(await self.link.run(self.link.client.delete(*names))) if names else 0

    async def counted(self, keys: Iterable[str]) -> list[str]:
        """Which of ``keys`` are counted now (a visitor's export)."""
        wanted = list(keys)
        names = [shared_key(LIMITS_TAG, f"rate:{key}") for key in wanted]
        found = [await self.link.run(self.link.client.exists(n)) for n in names]
        return [key for key, there in zip(wanted, found, strict=True) if there]


class RedisFailureLock:
    """``MemoryFailureLock``'s rule on Redis: a hash per address, forgotten by its TTL."""

    def __init__(
        self, link: RedisLink, free: int, base_s: float, max_s: float, forget_after_s: float
    ) -> None:
        self.link = link
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self.forget_after_s = forget_after_s
        self._failed = link.script(_FAILED)
        self._admit = link.wire_script(_ADMIT)  # every authorised request: the lean path

    def _key(self, key: str) -> str:
        return shared_key(LIMITS_TAG, f"failures:{key}")

    async def locked_for(self, key: str, now_s: float) -> float:
        until = await self.link.run(self.link.client.hget(self._key(key), "until"))
        return max(0.0, float(until) - now_s) if until is not None else 0.0

    async def failed(self, key: str, now_s: float) -> float:
        args = [now_s, self.free, self.base_s, self.max_s, self.forget_after_s]
        return float(await self.link.run(self._failed(keys=[self._key(key)], args=args)))

    async def admit(self, key: str, now_s: float) -> float:
        [left] = await self.link.send(self._admit.call([self._key(key)], [now_s]))
        return float(left)

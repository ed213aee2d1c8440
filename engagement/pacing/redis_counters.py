"""Pacing counters shared by several nodes through Redis, beside ``LocalCounters``.

``PacingCounters`` is synchronous (the pacer decides inside the lifecycle's synchronous path),
so each node paces from a mirror of the shared counters, pulled from Redis every pacing tick,
and writes each change through behind it (scripts, so that concurrent nodes never lose one).
A node therefore sees the other nodes' invitations in flight and answers within one pacing
tick (1 s at most); within that tick two nodes may both invite into the same room (docs/
cluster.md). Invitations a stopped node left in flight leave the count after
``IN_FLIGHT_MAX_MS``, unless another node lets them go first (orphans.py): each invitation
names its visitor, so that any node can read its attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from ..attempts import Attempt
from ..cluster.attempts import decode, visitor_keys
from ..cluster.redis import RedisLink, WriteBehind, shared_key
from .counters import ANY_STRATEGY, DECAY, LocalCounters
from .model import PRIOR_ACCEPTANCE, PRIOR_ANSWER_TIME_S, Estimate, Pending

IN_FLIGHT_MAX_MS = 3_600_000  # an invitation or acceptance counts in flight at most this long

_LEARN = """
local function learn(est, field, value, decay)
  local total = tonumber(redis.call('HGET', est, field .. ':t') or '0') * decay + value
  local weight = tonumber(redis.call('HGET', est, field .. ':w') or '0') * decay + 1
  redis.call('HSET', est, field .. ':t', string.format('%.9g', total))
  redis.call('HSET', est, field .. ':w', string.format('%.9g', weight))
end
"""
# KEYS: in flight (hash attemptID -> "p ms"), accepted (zset by ms), version, estimates (hash),
# visitors (hash attemptID -> globalVisitID, while in flight or accepted).
_INVITE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[4]) end
return redis.call('INCR', KEYS[3])
"""
_ANSWERED = (
    _LEARN
    + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HDEL', KEYS[5], ARGV[1])
end
redis.call('INCR', KEYS[3])
local decay, value = tonumber(ARGV[6]), tonumber(ARGV[2])
learn(KEYS[4], 'rate:' .. ARGV[3], value, decay)
learn(KEYS[4], 'rate:', value, decay)
if ARGV[4] ~= '' then learn(KEYS[4], 'time:', tonumber(ARGV[4]), decay) end
return 1
"""
)
_CONNECTED = """
redis.call('HDEL', KEYS[5], ARGV[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then redis.call('INCR', KEYS[3]) end
"""
# Answers {in flight (flat hash), accepted IDs, version, estimates (flat hash)}; drops the
# entries older than ARGV[2] ms (a node died with them in flight).
_PULL = """
local old = tonumber(ARGV[1]) - tonumber(ARGV[2])
local flat = redis.call('HGETALL', KEYS[1])
local changed = false
for i = 1, #flat, 2 do
  local ms = tonumber(string.match(flat[i + 1], ' (%S+)$'))
  if ms < old then
    redis.call('HDEL', KEYS[1], flat[i])
    redis.call('HDEL', KEYS[5], flat[i])
    changed = true
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', old)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[5], id)
  changed = true
end
if changed then redis.call('INCR', KEYS[3]) end
return {redis.call('HGETALL', KEYS[1]), redis.call('ZRANGE', KEYS[2], 0, -1),
        redis.call('GET', KEYS[3]) or '0', redis.call('HGETALL', KEYS[4])}
"""


class Stray(NamedTuple):
    """An invitation counted in flight that this node does not follow."""

    group: str
    attempt_id: str
    answered: bool  # accepted, waiting to be connected
    attempt: Attempt | None  # as the nodes wrote it; None when it is gone


def _keys(group: str) -> list[str]:
    tag = f"pacing:{group}"  # one slot per group: its scripts touch its keys only
    parts = ("inflight", "accepted", "version", "estimates", "visitors")
    return [shared_key(tag, part) for part in parts]


class RedisCounters:
    """``PacingCounters`` for several nodes: reads from the mirror, writes through to Redis."""

    def __init__(
        self,
        link: RedisLink,
        writes: WriteBehind,
        clock: Callable[[], int],
        prior_acceptance: float = PRIOR_ACCEPTANCE,
        prior_answer_s: float = PRIOR_ANSWER_TIME_S,
    ) -> None:
        self.link, self.writes, self.clock = link, writes, clock
        self.mirror = LocalCounters(prior_acceptance, prior_answer_s)
        self.groups: set[str] = set()  # groups this node paces: pulled every tick
        self.counted: dict[str, tuple[set[str], set[str]]] = {}  # as pulled: invited, accepted
        self._invite = link.script(_INVITE)
        self._answered = link.script(_ANSWERED)
        self._connected = link.script(_CONNECTED)
        self._pull = link.script(_PULL)

    def pending(self, group: str) -> Pending:
        self.groups.add(group)
        return self.mirror.pending(group)

    def invite(
        self, group: str, attempt_id: str, p_accept: float, version: int, visitor: str = ""
    ) -> bool:
        if not self.mirror.invite(group, attempt_id, p_accept, version):
            return False
        args = [attempt_id, repr(p_accept), self.clock(), visitor]
        self.writes.spawn(self._write(self._invite, group, args), f"pacing-invite-{attempt_id}")
        return True

    def answered(
        self, group: str, attempt_id: str, strategy: str, accepted: bool, answer_s: float | None
    ) -> None:
        self.mirror.answered(group, attempt_id, strategy, accepted, answer_s)
        args = [attempt_id, int(accepted), strategy, "" if answer_s is None else repr(answer_s),
                self.clock(), DECAY]  # fmt: skip
        self.writes.spawn(self._write(self._answered, group, args), f"pacing-answer-{attempt_id}")

    def connected(self, group: str, attempt_id: str) -> None:
        self.mirror.connected(group, attempt_id)
        args = [attempt_id]
        self.writes.spawn(self._write(self._connected, group, args), f"pacing-conn-{attempt_id}")

    def learn(self, group: str, strategy: str, accepted: bool, answer_s: float | None) -> None:
        """History read at start teaches this node's mirror only (every node reads the same
        history: written to Redis it would count once per node); answers reach Redis."""
        self.mirror.learn(group, strategy, accepted, answer_s)

    def acceptance(self, group: str, strategy: str) -> Estimate:
        return self.mirror.acceptance(group, strategy)

    def answer_time(self, group: str) -> Estimate:
        return self.mirror.answer_time(group)

    async def _write(self, script: Any, group: str, args: list[Any]) -> None:
        await self.link.run(script(keys=_keys(group), args=args))

    async def pull(self) -> None:
        """Refresh the mirror of every group this node paces (one round trip)."""
        groups = sorted(self.groups)
        if not groups:
            return
        now = self.clock()
        async with self.link.client.pipeline(transaction=False) as pipe:
            for group in groups:
                await self._pull(keys=_keys(group), args=[now, IN_FLIGHT_MAX_MS], client=pipe)
            answers = await self.link.run(pipe.execute())
        for group, (flat, accepted, version, est) in zip(groups, answers, strict=True):
            invited = {
                flat[i].decode(): float(flat[i + 1].split(b" ")[0]) for i in range(0, len(flat), 2)
            }
            taken = {a.decode() for a in accepted}
            self.counted[group] = (set(invited), taken)
            self.mirror.load(group, invited, set(taken), int(version), _estimates(est))

    async def strays(self, followed: Collection[str]) -> list[Stray]:
        """The invitations counted in flight (as last pulled) that this node does not follow,
        each with its attempt as the nodes wrote it (None if it is gone); two round trips."""
        found: list[tuple[str, str, bool]] = []  # group, attempt ID, answered
        for group, (invited, accepted) in self.counted.items():
            found += [(group, i, False) for i in invited if i not in followed]
            found += [(group, i, True) for i in accepted if i not in followed]
        if not found:
            return []
        async with self.link.client.pipeline(transaction=False) as pipe:
            for group, attempt_id, _ in found:
                pipe.hget(_keys(group)[4], attempt_id)
            visitors: list[bytes | None] = await self.link.run(pipe.execute())
        named = [(f, v.decode()) for f, v in zip(found, visitors, strict=True) if v is not None]
        if not named:
            return []
        async with self.link.client.pipeline(transaction=False) as pipe:
            for (_, attempt_id, _), visitor in named:
                pipe.hget(visitor_keys(visitor)[0], attempt_id)
            stored: list[bytes | None] = await self.link.run(pipe.execute())
        return [
            Stray(group, attempt_id, answered, None if body is None else decode(attempt_id, body))
            for ((group, attempt_id, answered), _), body in zip(named, stored, strict=True)
        ]


def _estimates(flat: list[bytes]) -> dict[tuple[str, str], tuple[float, float]]:
    """{("rate", strategy) | ("time", ""): (total, weight)} from the estimates hash."""
    values = {flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)}
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for field, total in values.items():
        if field.endswith(":t"):
            name = field[:-2]
            kind, _, strategy = name.partition(":")
            weight = values.get(f"{name}:w", 0.0)
            found[(kind, strategy if kind == "rate" else ANY_STRATEGY)] = (total, weight)
    return found

"""Attempts across nodes: each visit's attempts in a Redis hash, written through by the store
the lifecycle owner already calls, read back by every node that catches up with the visit.

A write never takes an attempt backwards: it is kept only if it holds more transitions than
the stored copy, or as many ending in the same state (a hand-off detail added). Two nodes
moving one attempt from the same state at once: the first write wins, the other node's copy
is replaced by it at its next catch-up (docs/cluster.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .. import constants as C
from ..attempts import Attempt, Origin, State
from ..lifecycle.owner import AttemptStore, Spawn
from .redis import RedisLink, shared_key, visit_key

log = logging.getLogger(__name__)

ATTEMPTS_TTL_S = 86_400  # a visit's attempts outlive its log: limits and late reports read them
VISITOR_TTL_S = C.LEDGER_DAYS * 86_400  # as long as limits and cool-downs look back

# KEYS: the visit's attempts (hash), its revision (counter). ARGV: TTL ms, then per attempt
# its ID, transitions, last state, JSON. Answers how many writes were refused.
_WRITE = """
local refused = 0
for i = 2, #ARGV, 4 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local keep = true
  if old then
    local n, state = string.match(old, '^(%d+) (%S+)')
    n = tonumber(n)
    local new_n = tonumber(ARGV[i + 1])
    keep = new_n > n or (new_n == n and state == ARGV[i + 2])
  end
  if keep then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2] .. ' ' .. ARGV[i + 3])
  else
    refused = refused + 1
  end
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return refused
"""


def encode(a: Attempt) -> str:
    return json.dumps(
        [
            a.visit_id, a.global_visit_id, a.page_id, a.strategy, a.origin.value, a.invite,
            a.media, a.params, a.timeout_s, a.created_at,
            [(s.value, t, why) for s, t, why in a.transitions], a.handoff, a.variant,
        ],
        separators=(",", ":"),
    )  # fmt: skip


def decode(attempt_id: str, stored: bytes) -> Attempt:
    """An attempt from its stored form: ``<transitions> <state> <JSON>``."""
    body = stored.split(b" ", 2)[2]
    (visit_id, gvid, page_id, strategy, origin, invite, media, params, timeout_s, created_at,
     transitions, handoff, variant) = json.loads(body)  # fmt: skip
    moves: list[tuple[State, int, str]] = [(State(s), t, why) for s, t, why in transitions]
    return Attempt(
        attempt_id, visit_id, gvid, page_id, strategy, Origin(origin), invite, media, params,
        timeout_s, created_at, moves[-1][0], moves, handoff, variant,
    )  # fmt: skip


class SharedAttemptStore:
    """The lifecycle's store: history as before, and each change written through to Redis
    (batched per event-loop turn; ``write_attempt`` and ``shared`` wait for Redis)."""

    def __init__(self, history: AttemptStore, link: RedisLink, spawn: Spawn) -> None:
        self.history = history
        self.link = link
        self.spawn = spawn
        self._write = link.script(_WRITE)
        self._dirty: dict[str, Attempt] = {}
        self._sending: dict[str, asyncio.Future[None]] = {}  # attempt ID -> its batch's write
        self.refused = 0  # writes that would have taken an attempt backwards

    def record_attempt(self, attempt: Attempt) -> None:
        self.history.record_attempt(attempt)
        if not self._dirty:
            self.spawn(self._flush(), "attempts-to-redis")
        self._dirty[attempt.attempt_id] = attempt

    async def write_attempt(self, attempt: Attempt) -> None:
        await self.history.write_attempt(attempt)
        self._dirty.pop(attempt.attempt_id, None)
        await self._send([attempt])

    async def shared(self, attempt: Attempt) -> None:
        """Its write queued for the end of the loop turn is sent now; a write already on its
        way is awaited (a failed one was logged: the attempt is written again at its next
        change, as from a batch)."""
        if self._dirty.pop(attempt.attempt_id, None) is not None:
            await self._send([attempt])
        elif (sending := self._sending.get(attempt.attempt_id)) is not None:
            await asyncio.shield(sending)

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if not dirty:  # ``shared`` sent them already
            return
        done = asyncio.get_running_loop().create_future()
        for attempt_id in dirty:
            self._sending[attempt_id] = done
        try:
            await self._send(list(dirty.values()))
        finally:
            for attempt_id in dirty:
                if self._sending.get(attempt_id) is done:
                    del self._sending[attempt_id]
            done.set_result(None)

    async def _send(self, attempts: list[Attempt]) -> None:
        """One round trip: each visit's attempts to the visit's hash (compare-and-set), and
        to its visitor's hash, which limits and cool-downs across visits read."""
        by_visit: dict[str, list[Any]] = {}
        by_visitor: dict[str, list[Any]] = {}
        for a in attempts:
            fields = [a.attempt_id, len(a.transitions), a.state.value, encode(a)]
            by_visit.setdefault(a.visit_id, [ATTEMPTS_TTL_S * 1000]).extend(fields)
            by_visitor.setdefault(a.global_visit_id, [VISITOR_TTL_S * 1000]).extend(fields)
        async with self.link.client.pipeline(transaction=False) as pipe:
            for visit_id, args in by_visit.items():
                keys = [visit_key(visit_id, "attempts"), visit_key(visit_id, "arev")]
                await self._write(keys=keys, args=args, client=pipe)
            for visitor, args in by_visitor.items():
                await self._write(keys=visitor_keys(visitor), args=args, client=pipe)
            answers = await self.link.run(pipe.execute())
        for visit_id, refused in zip(by_visit, answers, strict=False):
            if refused:
                self.refused += int(refused)
                log.warning("visit %s: another node moved an attempt first", visit_id)


def visitor_keys(global_visit_id: str) -> list[str]:
    """A visitor's attempts (across visits) and their revision, in the visitor's slot."""
    tag = f"visitor:{global_visit_id}"
    return [shared_key(tag, "attempts"), shared_key(tag, "arev")]

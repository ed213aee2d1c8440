"""One visit state across nodes: a per-visit ordered log of events in Redis.

A node that takes events of a visit appends them to the visit's log with one script, which
drops eventIDs already logged and answers the entries this node has not applied yet, its own
last. The node applies them in the log's order to its copy of the visit (``Visit.apply`` is
deterministic given the order), so every node that looks at a visit holds the same state, and
strategies decide on a state that includes every event logged before this node's own. A node
that never saw the visit rebuilds it from the log. See docs/cluster.md.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..attempts import Attempt
from ..monitoring.ingest import Ingestor
from ..monitoring.models import EventIn
from ..visits.model import Event, EventType, Visit
from ..visits.registry import VisitRegistry
from .attempts import decode as decode_attempt
from .attempts import visitor_keys
from .redis import RedisLink, visit_key

log = logging.getLogger(__name__)

KEY_PARTS = ("log", "ids", "base", "attempts", "arev", "epoch")  # a visit's keys, one slot
LOG_ENTRIES_MAX = 2000  # per visit; older entries leave the log (a rebuild starts after them)

# KEYS: the log (list), the eventIDs logged (set), the count of entries trimmed off the head,
# the visit's attempts (hash) and their revision, the log's epoch. ARGV: seq this node has
# applied, TTL ms, the cap, the attempts' revision this node has, the epoch this node knows
# and a new one (used if the log has none), then eventID and entry pairs. Answers {first,
# added, entries, revision, attempts, epoch}: entries[i] has seq first + 1 + i; the last
# `added` are ours; the attempts (a flat hash) only when their revision is not the one this
# node has. A log that lost its epoch (Redis restarted empty) starts a new one from seq 1.
# A log shorter than this node has applied lost its last entries (a failover to a replica that
# had not received them): answered from its end before this call's entries, and `behind` 1.
_APPEND = """
local epoch = redis.call('GET', KEYS[6])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[6], epoch, 'PX', ARGV[2])
end
local base = tonumber(redis.call('GET', KEYS[3]) or '0')
local rev = redis.call('GET', KEYS[5]) or '0'
local attempts = {}
if rev ~= ARGV[4] then attempts = redis.call('HGETALL', KEYS[4]) end
local added = 0
for i = 7, #ARGV, 2 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    added = added + 1
  end
end
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return {0, 0, {}, rev, attempts, epoch} end
local cap = tonumber(ARGV[3])
if len > cap then
  redis.call('LTRIM', KEYS[1], len - cap, -1)
  base = base + len - cap
  len = cap
  redis.call('SET', KEYS[3], base)
end
if added > 0 then
  local ttl = tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[6], ttl)
  if base > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
local from = tonumber(ARGV[1]) - base
if epoch ~= ARGV[5] then from = 0 end
local behind = 0
if from > len - added then
  from = len - added
  behind = 1
end
if from < 0 then from = 0 end
return {base + from, added, redis.call('LRANGE', KEYS[1], from, -1), rev, attempts, epoch, behind}
"""
_TYPES = {t.value: t for t in EventType}


def encode(event: Event) -> str:
    return json.dumps(
        [
            event.event_type.value, event.event_name, event.page_id, event.global_visit_id,
            event.timestamp, event.server_time, event.url, event.category, event.language_code,
            event.data,
        ],
        separators=(",", ":"),
    )  # fmt: skip


def decode(visit_id: str, event_id: str, entry: bytes) -> Event:
    kind, name, page, gvid, ts, server, url, category, language, data = json.loads(entry)
    return Event(
        event_id, _TYPES[kind], name, visit_id, page, gvid, ts, server, url, category, language,
        data,
    )  # fmt: skip


class SharedVisits:
    """This node's view of the shared visit logs: how far it applied each visit's."""

    def __init__(
        self, link: RedisLink, registry: VisitRegistry, ingestor: Ingestor, visit_timeout_s: float
    ) -> None:
        self.link = link
        self.registry = registry
        self.ingestor = ingestor
        self.ttl_ms = int(visit_timeout_s * 1000)
        self.applied: dict[str, int] = {}  # visitID -> seq of the last entry applied here
        self.revisions: dict[str, bytes] = {}  # visitID -> revision of its attempts seen here
        self.epochs: dict[str, bytes] = {}  # visitID -> the epoch of its log applied here
        self.visitors: dict[str, bytes] = {}  # globalVisitID -> revision of its attempts seen
        self.node = uuid.uuid4().hex[:12]  # makes the epochs this node starts unique
        self.adopt: Callable[[Attempt], object] | None = None  # the lifecycle's, once it exists
        self.rearm: Callable[[Visit], None] | None = None  # ditto: after Redis lost the visit
        self._append = link.wire_script(_APPEND)
        self.appends = 0  # scripts run, for commands per event

    async def ingest(self, batch: Sequence[EventIn]) -> tuple[list[Event], int]:
        """Log the batch's events, catch their visits up; the new events and the duplicates."""
        by_visit: dict[str, list[Event]] = {}
        for event in self.ingestor.build(batch):
            by_visit.setdefault(event.visit_id, []).append(event)
        registry = self.registry
        new_here = sum(1 for visit_id in by_visit if registry.get(visit_id) is None)
        if new_here and by_visit:  # no room: refused before anything is logged (503, retried)
            registry.reserve(new_here, next(iter(by_visit.values()))[0].server_time)
        fresh: list[Event] = []
        if len(by_visit) == 1:
            [(visit_id, events)] = by_visit.items()
            fresh = await self.catch_up(visit_id, events)
        else:  # a batch of several visits: their scripts in one round trip
            visitors = {events[0].global_visit_id for events in by_visit.values()}
            answers = await self.link.send(
                *(self._append.call(*self._call(v, events)) for v, events in by_visit.items()),
                *(("GET", visitor_keys(gvid)[1]) for gvid in visitors),
            )
            for visit_id, answer in zip(by_visit, answers, strict=False):
                fresh += self._caught_up(visit_id, answer)
            for gvid, revision in zip(visitors, answers[len(by_visit) :], strict=True):
                await self._visitor(gvid, revision)
        duplicates = len(batch) - len(fresh)
        self.ingestor.took(fresh, duplicates)
        return fresh, duplicates

    async def visit(self, visit_id: str) -> Visit | None:
        """The visit with every entry logged so far applied (None if none is logged)."""
        await self.catch_up(visit_id, [])
        return self.registry.get(visit_id)

    async def catch_up(self, visit_id: str, events: list[Event]) -> list[Event]:
        """Append ``events`` (maybe none) and apply what this node has not applied yet; the
        events this node logged (not duplicates), as applied."""
        known = self.registry.get(visit_id)
        gvid = events[0].global_visit_id if events else known and known.global_visit_id
        keys, args = self._call(visit_id, events)
        revision = None
        if gvid:  # the visitor's attempts' revision in the same round trip
            call = self._append.call(keys, args), ("GET", visitor_keys(gvid)[1])
            answer, revision = await self.link.send(*call)
        else:
            [answer] = await self.link.send(self._append.call(keys, args))
        own = self._caught_up(visit_id, answer)
        if not gvid and (rebuilt := self.registry.get(visit_id)) is not None:
            gvid = rebuilt.global_visit_id  # a visit this node had never seen
            revision = await self.link.run(self.link.client.get(visitor_keys(gvid)[1]))
        if gvid:
            await self._visitor(gvid, revision)
        return own

    async def _visitor(self, gvid: str, revision: bytes | None) -> None:
        """Adopt the visitor's attempts of every visit (limits and cool-downs read them) when
        they changed since this node last looked."""
        if revision is None or self.adopt is None or self.visitors.get(gvid) == revision:
            return
        stored: dict[bytes, bytes] = await self.link.run(
            self.link.client.hgetall(visitor_keys(gvid)[0])  # type: ignore[arg-type]
        )
        for attempt_id, body in stored.items():
            self.adopt(decode_attempt(attempt_id.decode(), body))
        self.visitors[gvid] = revision

    async def refresh_visitors(self, gvids: Iterable[str]) -> None:
        """Adopt the attempts of these visitors that changed since this node last looked, even
        if none of their visits' requests reaches this node (one round trip, and one per
        visitor that changed): the pacer follows the answers to the invitations it sent."""
        found = sorted(gvids)
        if not found:
            return
        async with self.link.client.pipeline(transaction=False) as pipe:
            for gvid in found:
                pipe.get(visitor_keys(gvid)[1])
            revisions = await self.link.run(pipe.execute())
        for gvid, revision in zip(found, revisions, strict=True):
            await self._visitor(gvid, revision)

    def _call(self, visit_id: str, events: list[Event]) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the log script for this visit and these events."""
        revision = self.revisions.get(visit_id, b"0")
        epoch = self.epochs.get(visit_id, b"")
        self.appends += 1
        args: list[Any] = [
            self.applied.get(visit_id, 0), self.ttl_ms, LOG_ENTRIES_MAX, revision, epoch,
            f"{self.node}:{self.appends}",
        ]  # fmt: skip
        for event in events:
            args += [event.event_id, _entry(event)]
        return [visit_key(visit_id, part) for part in KEY_PARTS], args

    def _caught_up(self, visit_id: str, answer: Any) -> list[Event]:
        """Apply what the log script answered; the events this node logged."""
        first, added, entries, revision, attempts, epoch, behind = answer
        lost = False
        if epoch != self.epochs.get(visit_id):  # a new log (Redis lost the old one): from 1
            if visit_id in self.epochs:
                log.warning("visit %s: its log in Redis was lost; going on from here", visit_id)
                lost = True
            self.epochs[visit_id] = epoch
            self.applied[visit_id] = 0
        # Another request of this node may have applied some entries while this one waited.
        known = self.applied.get(visit_id, 0)
        if behind:
            # This node keeps what it applied of the lost entries (it cannot take them back);
            # it goes on from the log's end, so what is logged from now on is applied here.
            log.warning(
                "visit %s: its log in Redis lost %d entries applied here (a failover?); going "
                "on from its end", visit_id, known - first,
            )  # fmt: skip
            known = self.applied[visit_id] = first
        last = first + len(entries)
        own: list[Event] = []
        if last > known or added:
            decoded = [_decode(visit_id, entry) for entry in entries]
            own = decoded[len(decoded) - added :] if added else []
            todo = decoded[max(0, known - first) :]
            self.registry.apply_log(visit_id, todo, own)
            self.applied[visit_id] = max(known, last)
        if attempts and self.adopt is not None:
            for i in range(0, len(attempts), 2):
                self.adopt(decode_attempt(attempts[i].decode(), attempts[i + 1]))
            self.revisions[visit_id] = revision
        if lost and self.rearm is not None and (visit := self.registry.get(visit_id)):
            self.rearm(visit)
        return own

    async def sweep(self, now: int) -> int:
        """Close visits idle past the timeout, unless another node saw them since (their log
        lives on): those only leave this node's memory, rebuilt from the log if seen again.
        How many were closed."""
        limit = now - self.ttl_ms
        idle = [v.visit_id for v in self.registry if v.last_seen_at < limit]
        if idle:
            async with self.link.client.pipeline(transaction=False) as pipe:
                for visit_id in idle:
                    pipe.exists(visit_key(visit_id, "log"))
                alive = await self.link.run(pipe.execute())
            for visit_id, elsewhere in zip(idle, alive, strict=True):
                if elsewhere:
                    self.forget(visit_id)
        closed = self.registry.close_idle(now)
        for visit in closed:
            self._drop(visit.visit_id)
        live = {v.global_visit_id for v in self.registry}
        self.visitors = {g: r for g, r in self.visitors.items() if g in live}
        return len(closed)

    def _drop(self, visit_id: str) -> None:
        self.applied.pop(visit_id, None)
        self.revisions.pop(visit_id, None)
        self.epochs.pop(visit_id, None)

    def forget(self, visit_id: str) -> None:
        self._drop(visit_id)
        self.registry.forget(visit_id)


def _entry(event: Event) -> str:
    return f"{event.event_id}\n{encode(event)}"


def _decode(visit_id: str, entry: bytes) -> Event:
    event_id, _, body = entry.partition(b"\n")
    return decode(visit_id, event_id.decode(), body)

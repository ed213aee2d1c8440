"""A visitor's erasure with several nodes: their keys in Redis, and the word to every node.

Every key of a visit carries its hash tag (``eng:{visitID}:...``: the shared event log, the
attempts, the strict-mode claim, the push buffer), so one SCAN per visit finds them all and one
DEL removes them (one hash slot, Redis Cluster too). The shared schedules (time-based
conditions, attempt deadlines) name the visit at the start of each member. Then the erasure is
recorded in one Redis Stream, the erasure log, which every node reads from the last entry it
handled: it drops the visit from its memory (live visit, attempts, streams, link tokens) and
deletes again the rows it may have written since (its queue is written first). A node cut from
Redis when the erasure was recorded reads it when it is back, so erasure is complete on every
node within that node's reconnection and its write. The log names the visits and browsers
(visitIDs, globalVisitIDs: random IDs), never an identity, and keeps them only as long as a
node may still hold such a visit (``keep_s``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..cluster.attempts import visitor_keys
from ..cluster.claims import DEADLINES_KEY
from ..cluster.dues import SCHEDULE_KEY
from ..cluster.redis import RedisLink, shared_key, visit_key

log = logging.getLogger(__name__)

LOG_KEY = shared_key("privacy", "erasures")  # a stream; each entry {"subject": JSON}
LOGGED = ("globalVisitIDs", "visitIDs")  # the identities are not logged: each node finds them
SCHEDULES = (SCHEDULE_KEY, DEADLINES_KEY)  # members "visitID ..."
# The log keeps an entry for visit_timeout_s and this margin. A node cut from Redis holds the
# erased visit until it goes idle (visit_timeout_s after its last event) and may write it
# meanwhile; back within that time plus the margin (its reconnection and its write), it reads
# the entry and deletes what it wrote. Longer, the entry names visitIDs no node can still
# hold: kept no longer than useful (a node cut for longer logs what it may have missed).
LOG_MARGIN_S = 600.0
READ_BLOCK_MS = 1000  # under the client's socket timeout (2 s): a blocked read is not a failure
REREAD_S = 1.0  # after a lost connection: Redis restarted, or the network blinked

Told = Callable[[dict[str, list[str]]], Awaitable[object]]
Drain = Callable[[], Awaitable[None]]


def _visitor_keys(global_visit_ids: Sequence[str]) -> list[str]:
    return [key for gvid in global_visit_ids for key in visitor_keys(gvid)]


def _entry(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class SharedErasure:
    def __init__(self, link: RedisLink, visit_timeout_s: float, drain: Drain | None = None) -> None:
        self.link = link
        self.drain = drain  # this node's writes to Redis not yet landed
        self.keep_s = visit_timeout_s + LOG_MARGIN_S  # how long the erasure log keeps an entry
        self.told = 0  # erasures read in the log (this node's own too), for tests and logs
        self._heard = ""  # the last entry counted in ``told``
        self.finished = 0  # ... and done here: memory, rows, the keys this node wrote since

    async def keys_of(
        self, visit_ids: Sequence[str], global_visit_ids: Sequence[str] = ()
    ) -> list[str]:
        """The visitor's keys, and their members of the shared schedules (an export)."""
        client, found = self.link.client, []
        for visit_id in visit_ids:
            found += [k.decode() async for k in client.scan_iter(match=visit_key(visit_id, "*"))]
            for schedule in SCHEDULES:
                found += [
                    f"{schedule} {m.decode()}"
                    async for m, _ in client.zscan_iter(schedule, match=f"{visit_id} *")
                ]
        return found + [k for k in _visitor_keys(global_visit_ids) if await client.exists(k)]

    async def erase(self, subject: dict[str, list[str]]) -> int:
        """Delete the visitor's keys and schedule members; tell every node, in the erasure
        log, trimmed of the entries older than ``keep_s``. How many."""
        removed = await self.sweep(subject)
        seconds, micros = await self.link.run(self.link.client.time())  # the log's own clock
        oldest = int(seconds * 1000 + micros // 1000 - self.keep_s * 1000)
        entry = json.dumps({k: subject[k] for k in LOGGED})
        added = self.link.client.xadd(
            LOG_KEY, {"subject": entry}, minid=f"{max(oldest, 0)}-0", approximate=True
        )
        await self.link.run(added)
        return removed

    async def sweep(self, subject: dict[str, list[str]]) -> int:
        """Delete the visitor's keys (their visits' and the visitor's own attempts across
        visits) and schedule members, once this node's writes for them have landed (cancelling
        their attempts writes; landing after the delete, those writes would bring keys back).
        Every node does it when told, after its own writes. How many."""
        if self.drain is not None:
            await self.drain()
        client, removed = self.link.client, 0
        for visit_id in subject["visitIDs"]:
            keys = [k async for k in client.scan_iter(match=visit_key(visit_id, "*"))]
            if keys:
                removed += int(await self.link.run(client.delete(*keys)))
            for schedule in SCHEDULES:
                members = [m async for m, _ in client.zscan_iter(schedule, match=f"{visit_id} *")]
                if members:
                    removed += int(await self.link.run(client.zrem(schedule, *members)))
        visitors = _visitor_keys(subject["globalVisitIDs"])
        if visitors:
            removed += int(await self.link.run(client.delete(*visitors)))
        return removed

    async def listen(self, told: Told) -> None:
        """Until cancelled: what any node erased leaves this node's memory too. Reads the log
        from its last entry when it started, then from the last entry it handled, so that after
        a lost connection it applies every erasure it missed, in order."""
        last: str | None = None
        lost = False
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():
                # A cancel the client library caught and did not raise again (a read that
                # returned instead) still stops the loop, or a stopping node would wait for it.
                raise asyncio.CancelledError
            try:
                if last is None:  # "$" resolved once: a read retried from "$" would miss some
                    newest: Any = await self.link.client.xrevrange(LOG_KEY, count=1)
                    last = newest[0][0].decode() if newest else "0-0"
                if lost:
                    await self._check_trimmed(last)
                    lost = False
                read: Any = await self.link.client.xread({LOG_KEY: last}, block=READ_BLOCK_MS)
                for entry_id, fields in read[0][1] if read else []:
                    await self._apply(entry_id.decode(), fields, told)
                    last = entry_id.decode()
            except (RedisError, OSError) as exc:
                if me is not None and me.cancelling():
                    # redis-py can turn the cancel of a read into a connection error: stopping
                    # must still stop (the loop would otherwise read again for ever).
                    raise asyncio.CancelledError from exc
                if not lost:
                    log.warning("erasure log unreachable (%r): reading again from %s", exc, last)
                lost = True
                await asyncio.sleep(REREAD_S)

    async def _apply(self, entry_id: str, fields: dict[bytes, bytes], told: Told) -> None:
        try:
            word = json.loads(fields[b"subject"])
            subject = {k: [str(i) for i in word[k]] for k in LOGGED}
        except (ValueError, KeyError, TypeError) as exc:
            log.error("erasure log entry %s cannot be read: %r", entry_id, exc)
            return
        if entry_id != self._heard:  # an entry read again after a lost connection: once
            self.told += 1
            self._heard = entry_id
        try:
            await told({**subject, "identityIds": []})
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise  # read again from this entry once Redis is back
        except Exception:  # the store failed: this node's copy stays; say so
            log.exception("erasure read in the log could not finish here")
        else:
            self.finished += 1

    async def _check_trimmed(self, last: str) -> None:
        """Log it if the log was trimmed past ``last`` while this node was cut from Redis (an
        outage longer than ``keep_s``): erasures logged after ``last`` may be gone unread,
        and must be repeated. Trimming removes the oldest entries first, so the log still
        holding ``last`` or an older entry means that nothing newer was lost."""
        first: Any = await self.link.client.xrange(LOG_KEY, count=1)
        if last != "0-0" and first and _entry(first[0][0].decode()) > _entry(last):
            log.error(
                "erasure log trimmed past %s while this node was cut from Redis: erasures "
                "logged before %s may be missed here; erase them again",
                last,
                first[0][0].decode(),
            )


# Take a token once: its link the first time, then "u" + link (used). KEYS: the token's key.
_TAKE = """
local v = redis.call('GET', KEYS[1])
if not v then return {false, 0} end
if string.sub(v, 1, 1) == 'u' then return {false, 1} end
redis.call('SET', KEYS[1], 'u' .. v, 'KEEPTTL')
return {v, 0}
"""


class RedisTokens:
    """Link tokens held in Redis for every node (each its own key, expiring with the token),
    so a link issued on one node is redeemed on any, once."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._take = link.script(_TAKE)

    def _key(self, token_id: str) -> str:
        return shared_key("links", f"token:{token_id}")

    async def put(self, token_id: str, link: str, ttl_ms: int) -> None:
        await self.link.run(self.link.client.set(self._key(token_id), link, px=max(ttl_ms, 1)))

    async def take(self, token_id: str) -> tuple[str | None, bool]:
        value, used = await self.link.run(self._take(keys=[self._key(token_id)]))
        return (value.decode() if value else None), bool(used)

    async def links(self) -> list[str]:
        client, found = self.link.client, []
        async for key in client.scan_iter(match=self._key("*")):
            value = await self.link.run(client.get(key))
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else str(value)
                found.append(f"{key.decode().rsplit(':', 1)[-1]} {text}")
        return found

    async def drop(self, token_ids: list[str]) -> int:
        keys = [self._key(t) for t in token_ids]
        return int(await self.link.run(self.link.client.delete(*keys))) if keys else 0

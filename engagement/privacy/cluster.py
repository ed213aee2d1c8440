"""A visitor's erasure with several nodes: their keys in Redis, and the word to every node.

Every key of a visit carries its hash tag (``eng:{visitID}:...``: the shared event log, the
attempts, the strict-mode claim, the push buffer), so one SCAN per visit finds them all and one
DEL removes them (one hash slot, Redis Cluster too). The shared schedules (time-based
conditions, attempt deadlines) name the visit at the start of each member. Then every node is
told on one pub/sub channel: it drops the visit from its memory (live visit, attempts, streams,
link tokens) and deletes again the rows it may have written since (its queue is written first),
so erasure is complete on every node within a pub/sub round trip and that node's write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from ..cluster.attempts import visitor_keys
from ..cluster.claims import DEADLINES_KEY
from ..cluster.dues import SCHEDULE_KEY
from ..cluster.redis import RedisLink, shared_key, visit_key

log = logging.getLogger(__name__)

CHANNEL = shared_key("privacy", "erased")  # the subject: {globalVisitIDs, visitIDs, identityIds}
SCHEDULES = (SCHEDULE_KEY, DEADLINES_KEY)  # members "visitID ..."
SUBJECT_KEYS = ("globalVisitIDs", "visitIDs", "identityIds")
RESUBSCRIBE_S = 1.0  # after a lost connection: Redis restarted, or the network blinked

Told = Callable[[dict[str, list[str]]], Awaitable[object]]
Drain = Callable[[], Awaitable[None]]


def _visitor_keys(global_visit_ids: Sequence[str]) -> list[str]:
    return [key for gvid in global_visit_ids for key in visitor_keys(gvid)]


class SharedErasure:
    def __init__(self, link: RedisLink, drain: Drain | None = None) -> None:
        self.link = link
        self.drain = drain  # this node's writes to Redis not yet landed
        self.told = 0  # erasures heard on the channel (this node's own too), for tests and logs
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
        """Delete the visitor's keys and schedule members; tell every node. How many."""
        removed = await self.sweep(subject)
        await self.link.run(self.link.client.publish(CHANNEL, json.dumps(subject)))
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
        """Until cancelled: what other nodes erased leaves this node's memory too."""
        while True:
            pubsub: Any = self.link.client.pubsub()  # redis-py's PubSub is untyped
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        word = json.loads(message["data"])
                        subject = {k: [str(i) for i in word[k]] for k in SUBJECT_KEYS}
                    except (ValueError, KeyError, TypeError) as exc:
                        log.error("erasure message cannot be read: %r", exc)
                        continue
                    self.told += 1
                    try:
                        await told(subject)
                    except (RedisError, OSError):
                        raise
                    except Exception:  # the store failed: this node's copy stays; say so
                        log.exception("erasure told by another node could not finish here")
                    else:
                        self.finished += 1
            except (RedisError, OSError) as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # redis-py can turn the cancel of a read into a connection error: stopping
                    # must still stop (the loop would otherwise subscribe again for ever).
                    raise asyncio.CancelledError from exc
                log.warning("erasure channel lost (%r): subscribing again", exc)
                await asyncio.sleep(RESUBSCRIBE_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


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

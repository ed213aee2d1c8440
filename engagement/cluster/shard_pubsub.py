"""Sharded pub/sub on Redis Cluster: one ``Subscriber`` per shard that owns a channel.

A visit's channel carries its hash tag (``eng:{visitID}:push``), so it belongs to the visit's
slot: the push script publishes it with ``SPUBLISH`` on the visit's shard, and Redis sends the
message to that shard's subscribers only (classic ``PUBLISH`` crosses the cluster bus to every
node). The node subscribes to each channel (``SSUBSCRIBE``) on the primary serving its slot,
one connection per such primary. When a slot moves (resharding, a failover), Redis
unsubscribes its channels or refuses them (``MOVED``), or the connection drops: the node reads
the slot map again and subscribes each channel where it now lives; the confirmation, not asked
for, makes the push hub read what its pages missed from the buffer (push.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from .redis import CONNECT_RETRIES, SOCKET_TIMEOUT_S, redacted
from .shards import ClusterUrl, ClusterWire, is_cluster
from .subscriber import Subscriber

log = logging.getLogger(__name__)

REROUTE_BACKOFF_S = (0.05, 1.0)  # first and longest wait between tries to read the map again


class ShardedSubscriber:
    """``Subscriber``'s interface over the shards of a Redis Cluster."""

    def __init__(
        self,
        url: str,
        on_message: Callable[[str, bytes], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        self.url = redacted(url)
        self.cluster = ClusterUrl.parse(url)
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.channels: set[str] = set()
        self.where: dict[str, str] = {}  # channel -> "host:port" it is subscribed on
        self.reroutes = 0  # slot map reads after a move (for tests and logs)
        self._map = ClusterWire(url, SOCKET_TIMEOUT_S, CONNECT_RETRIES)  # its slot map only
        self._shards: dict[str, Subscriber] = {}
        self._opening: dict[str, asyncio.Task[Subscriber]] = {}
        self._rerouting: asyncio.Task[None] | None = None

    async def start(self, *channels: str) -> None:
        """Read the slot map, connect to every primary (a page's first subscription is then
        one write, not a new connection) and subscribe; raises when the cluster cannot be
        reached."""
        await self._map.refresh()
        for address in dict.fromkeys(self._map.slots):
            await self._connected(address)
        await self.subscribe(*channels)

    async def _connected(self, address: str) -> Subscriber:
        """The shard's subscriber, connected (raises when it cannot be reached); one
        connection per shard however many subscriptions wait for it."""
        shard = self._shards.get(address)
        if shard is not None:
            return shard
        opening = self._opening.get(address)
        if opening is None:
            opening = self._opening[address] = asyncio.get_running_loop().create_task(
                self._open(address)
            )
            opening.add_done_callback(lambda _: self._opening.pop(address, None))
        return await asyncio.shield(opening)

    async def _open(self, address: str) -> Subscriber:
        shard = self._shard(address)
        await shard.start()
        self._shards[address] = shard
        return shard

    async def subscribe(self, *channels: str) -> None:
        """SSUBSCRIBE each channel on its shard (confirmations through ``on_subscribed``)."""
        self.channels.update(channels)
        by_shard: dict[str, list[str]] = {}
        for channel in channels:
            by_shard.setdefault(self._map.address_of(("SSUBSCRIBE", channel)), []).append(channel)
        for address, found in by_shard.items():
            shard = await self._connected(address)
            await shard.subscribe(*found)
            self.where.update((channel, address) for channel in found)

    async def unsubscribe(self, *channels: str) -> None:
        self.channels.difference_update(channels)
        by_shard: dict[str, list[str]] = {}
        for channel in channels:
            if (address := self.where.pop(channel, None)) is not None:
                by_shard.setdefault(address, []).append(channel)
        for address, found in by_shard.items():
            if (shard := self._shards.get(address)) is not None:
                await shard.unsubscribe(*found)

    async def aclose(self) -> None:
        if self._rerouting is not None:
            self._rerouting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rerouting
        for opening in list(self._opening.values()):
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, RedisError, TimeoutError):
                await opening
        for shard in list(self._shards.values()):
            await shard.aclose()
        self._shards.clear()
        await self._map.close()

    def _shard(self, address: str) -> Subscriber:
        host, _, port = address.rpartition(":")
        url = self.cluster.node_url(host.strip("[]"), int(port))
        return Subscriber(
            url, self.on_message, self.on_subscribed, sharded=True, on_moved=self._moved
        )

    def _moved(self) -> None:
        """A shard dropped or refused a channel, or its connection: subscribe again where the
        slot map says (once at a time)."""
        if self._rerouting is None or self._rerouting.done():
            self._rerouting = asyncio.get_running_loop().create_task(self._reroute())

    async def _reroute(self) -> None:
        wait_s = REROUTE_BACKOFF_S[0]
        while True:
            # A moment first: the cluster's nodes agree on a new map within moments of a
            # change, and a refused subscription asks for this again (at most 20 a second).
            await asyncio.sleep(REROUTE_BACKOFF_S[0])
            try:
                await self._map.refresh()
                self.reroutes += 1
                await self._move_channels()
                return
            except (OSError, RedisError, TimeoutError) as exc:
                log.warning("push: cannot subscribe again after a slot moved: %r", exc)
                await asyncio.sleep(wait_s)
                wait_s = min(REROUTE_BACKOFF_S[1], wait_s * 2)

    async def _move_channels(self) -> None:
        moved: dict[str, list[str]] = {}
        for channel in self.channels:
            address = self._map.address_of(("SSUBSCRIBE", channel))
            old = self.where.get(channel, "")
            shard = self._shards.get(old)
            if old != address or shard is None or channel not in shard.channels:
                # Moved, or Redis dropped it, or refused it (MOVED: a map read while the
                # cluster changed still named the old primary).
                moved.setdefault(old, []).append(channel)
        for old, found in moved.items():
            if (shard := self._shards.get(old)) is not None:
                shard.channels.difference_update(found)  # not subscribed there again
            for channel in found:
                self.where.pop(channel, None)
            await self.subscribe(*found)
        primaries = set(self._map.slots)
        for address in [a for a in self._shards if a not in primaries]:  # no longer a primary
            await self._shards.pop(address).aclose()


def subscriber_for(
    url: str, on_message: Callable[[str, bytes], None], on_subscribed: Callable[[str], None]
) -> Subscriber | ShardedSubscriber:
    """The node's pub/sub reader: sharded on a Redis Cluster, else one connection."""
    if is_cluster(url):
        return ShardedSubscriber(url, on_message, on_subscribed)
    return Subscriber(url, on_message, on_subscribed)

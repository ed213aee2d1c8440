"""Push across nodes: the Redis hub, side by side with the in-process ``LocalHub``.

A publication, on whichever node decides it, is one Lua call (``push_lua.PUBLISH``): it appends
the SSE frame to the visit's bounded replay buffer in Redis and publishes it on the visit's
channel. Each node holds one pub/sub connection, subscribed to the channels of the visits
whose pages stream from it, and hands what arrives to those streams. A page that (re)connects,
here or anywhere, is subscribed first and then reads what it missed from the buffer; what
arrives live meanwhile waits, and message ids (the Redis buffer's offsets) drop duplicates.
When the buffer cannot say that nothing was lost (Redis restarted, or the bound trimmed what
the page had not seen) the page gets a ``gpe.resync`` frame instead of silence. docs/cluster-push.md
compares this with Centrifugo's Redis engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from redis.exceptions import RedisError

from ..buckets import Buckets
from ..notifications.hub import Message, Stream
from ..notifications.service import resync_frame
from . import push_lua
from .redis import RedisLink, visit_key
from .resp import Arg
from .shard_pubsub import subscriber_for
from .shards import is_cluster
from .subscriber import Subscriber

log = logging.getLogger(__name__)

NODE_CHANNEL = "eng:push-node:"  # + node id: keeps the pub/sub connection listening
SUBSCRIBE_TIMEOUT_S = 10.0  # a page waits this long at most for its channel's subscription
ALL_PAGES = "-"
FORGET = "!"  # in place of a page: the visit was erased, end its streams
PUBLISH_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
STOP_FLUSH_S = 5.0  # publications still queued at shutdown get this long to reach Redis


class PushUnavailable(Exception):
    """Redis did not take a publication (it is down or refused the script)."""


def channel_of(visit_id: str) -> str:
    """The visit's pub/sub channel (in its hash slot too, for sharded pub/sub)."""
    return visit_key(visit_id, "push")


def keys_of(visit_id: str) -> list[str]:
    """The replay buffer (a Redis Stream) and its meta hash, on the slot of ``{visitID}``."""
    return [visit_key(visit_id, "push:buffer"), visit_key(visit_id, "push:meta")]


def gap(since: int, now: int, top: int, born: int, trimmed: int, ttl_ms: int) -> str | None:
    """Why a page that handled message ``since`` may have missed messages the buffer no longer
    holds, or None when the buffer has all of them. Ids are Redis clock milliseconds, so an id
    says when its message was published: ``top``, ``born``, ``trimmed`` are the meta's (0 when
    there is no buffer)."""
    if since == 0:
        return None  # a new page: whatever is buffered, nothing more was promised
    if top == 0:  # no buffer: expired (nothing for the TTL: fine) or lost with Redis
        return "lost" if since + ttl_ms > now else None
    if since > top:
        return "lost"  # the page saw messages Redis no longer knows: it went back in time
    if since < born:  # the buffer was born after the page's message: the old one ended...
        return "lost" if since + ttl_ms > born else None  # ...before its TTL was up: lost
    if trimmed > since and trimmed + ttl_ms > now:
        return "bound"  # the bound dropped messages the page had not seen yet
    return None


class RemoteStream(Stream):
    """A page's stream fed from Redis: the last id it got, the birth of the buffer it was
    read from (0: none), and what arrived live while it was reading its missed messages (None
    once it is live)."""

    __slots__ = ("born", "last_id", "pending")

    def __init__(self, visit_id: str, page_id: str, since: int) -> None:
        super().__init__(visit_id, page_id)
        self.last_id = since
        self.born = 0
        self.pending: list[tuple[int, int, str, bytes]] | None = []

    def deliver(self, message_id: int, born: int, page: str, frame: bytes, ttl_ms: int) -> bool:
        """Put the frame unless it came already or is for another page; True when the page
        was told to resync first."""
        if message_id <= self.last_id or page not in (ALL_PAGES, self.page_id):
            return False
        told = False
        if self.born and born != self.born and born > self.last_id:
            # The buffer this stream was read from is gone and a new one began since (keys
            # flushed or evicted with the pub/sub connection up): was it before its time?
            reason = gap(self.last_id, born, born, born, 0, ttl_ms)
            if reason:
                self.put(resync_frame(self.last_id, reason))
                told = True
        self.born = born
        self.last_id = message_id
        self.put(frame)
        return told


class RedisHub:
    """Routes a visit's messages to its pages' streams on every node, through Redis."""

    def __init__(
        self, link: RedisLink, buffer_messages: int, ttl_s: float, max_streams_per_visit: int
    ) -> None:
        self.link = link
        self.buffer_messages = buffer_messages
        self.ttl_ms = int(ttl_s * 1000)
        self.ttl_s = max(1, round(ttl_s))
        self.max_streams_per_visit = max_streams_per_visit
        self.node = uuid.uuid4().hex[:12]  # tells this node's own publications from others'
        self._publish = link.wire_script(push_lua.PUBLISH)
        self._read = link.script(push_lua.READ)
        self._streams: dict[str, list[RemoteStream]] = {}
        # A future per SUBSCRIBE sent and not yet confirmed, in order, per channel.
        self._confirming: dict[str, deque[asyncio.Future[None]]] = {}
        self._subscribed: set[str] = set()
        self._outbox: list[tuple[str, str, str]] = []
        self._queued: asyncio.Future[None] | None = None  # done when the outbox is written
        self._writing: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pubsub = subscriber_for(link.connect_url, self._route, self._confirmed)
        # On Redis Cluster a channel lives on its slot's shard (shard_pubsub.py).
        self.publish_command = "SPUBLISH" if is_cluster(link.connect_url) else "PUBLISH"
        if isinstance(self._pubsub, Subscriber):  # under Sentinel: to the new master
            link.on_master_switch.append(self._pubsub.reconnect)
        self.streams_dropped_total = 0
        self.published_total = 0  # publications this node wrote to Redis
        self.publish_failures_total = 0
        self.received_total = 0  # messages from pub/sub for a stream held here
        self.cross_node_total = 0  # ... of which another node published
        self.resyncs_total = 0
        self._publish_s = Buckets(PUBLISH_BUCKETS_S)

    # -- the PushHub protocol --

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def publish(
        self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any], now_ms: int
    ) -> None:
        """Queue a message for Redis (in order); ``sent`` waits until Redis has it."""
        body = orjson.dumps({"channel": channel, "data": data})[1:].decode()  # as hub.encode
        self._outbox.append((visit_id, page_id or ALL_PAGES, body))
        if self._queued is None:
            self._queued = asyncio.get_running_loop().create_future()
            self._wake.set()

    async def sent(self) -> None:
        """Wait until Redis holds every message published here so far (PushUnavailable if it
        refused them)."""
        waiting = self._queued or self._writing
        if waiting is not None:
            await asyncio.shield(waiting)

    def connect(self, visit_id: str, page_id: str, since: int, now_ms: int) -> Stream:
        stream = RemoteStream(visit_id, page_id, since)
        streams = self._streams.setdefault(visit_id, [])
        streams.append(stream)
        if len(streams) > self.max_streams_per_visit:
            streams.pop(0).close()  # as LocalHub: most likely a tab gone without a word
            self.streams_dropped_total += 1
        self._spawn(self._catch_up(visit_id, [stream]))
        return stream

    def disconnect(self, stream: Stream, now_ms: int) -> None:
        streams = self._streams.get(stream.visit_id)
        if streams is not None and stream in streams:
            streams.remove(stream)
            if not streams:
                del self._streams[stream.visit_id]  # unsubscribed at the next sweep

    def has_stream(self, visit_id: str, page_id: str) -> bool:
        return any(s.page_id == page_id for s in self._streams.get(visit_id, ()))

    def close_all(self) -> None:
        for streams in self._streams.values():
            for stream in streams:
                stream.close()

    def sweep(self, now_ms: int) -> int:
        """Leave the channels of visits with no stream here any more."""
        idle = [c for c in self._subscribed if _visit_of(c) not in self._streams]
        if idle:
            self._subscribed.difference_update(idle)
            self._spawn(self._unsubscribe(idle))
        return len(idle)

    async def buffered(self, visit_id: str) -> list[Message]:
        """The messages in the visit's Redis buffer (a visitor's export)."""
        entries: Any = await self.link.run(self.link.client.xrange(keys_of(visit_id)[0]))
        messages = []
        for entry_id, fields in entries:
            message_id = int(entry_id.split(b"-", 1)[0])
            page, frame = fields[b"p"].decode(), fields[b"f"]
            payload = orjson.loads(frame.split(b"data: ", 1)[1])
            page_id = None if page == ALL_PAGES else page
            messages.append(
                Message(message_id, page_id, payload["channel"], payload["data"], message_id, frame)
            )
        return messages

    async def forget(self, visit_id: str) -> int:
        """A visitor's erasure: the Redis buffer goes, and every node ends the visit's streams
        (told on its channel); the streams closed here."""
        client = self.link.client
        with contextlib.suppress(PushUnavailable):  # publications queued (a closing invitation)
            await self.sent()  # land first: written after the delete, they would bring it back
        await self.link.run(client.delete(*keys_of(visit_id)))
        forget = f"0 0 {self.node} {FORGET}\n"
        await self.link.send((self.publish_command, channel_of(visit_id), forget))
        return self._end(visit_id)

    def _end(self, visit_id: str) -> int:
        streams = self._streams.pop(visit_id, [])
        for stream in streams:
            stream.close()
        return len(streams)

    # -- running --

    async def start(self) -> None:
        """Open the pub/sub connection (on this node's own channel, so it always listens) and
        start writing publications."""
        await self._pubsub.start(NODE_CHANNEL + self.node)
        self._spawn(self._write())

    async def stop(self) -> None:
        """Write what is still queued (for a while), then close the pub/sub connection."""
        with contextlib.suppress(PushUnavailable, TimeoutError):
            async with asyncio.timeout(STOP_FLUSH_S):
                await self.sent()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pubsub.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self) -> None:
        """One round trip per batch: publications queued while one is written go in the next."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            done, self._queued = self._queued, None
            if done is None:
                continue
            self._writing = done
            started = time.perf_counter()
            try:
                await self.link.send(*(self._publication(*message) for message in batch))
            except RedisError as exc:
                self.publish_failures_total += len(batch)
                log.error("push: Redis did not take %d publications: %r", len(batch), exc)
                done.set_exception(PushUnavailable(f"Redis did not take the messages: {exc}"))
                done.exception()  # retrieved: nobody may be waiting for it
            else:
                self.published_total += len(batch)
                done.set_result(None)
            finally:
                self._writing = None
            self._publish_s.observe(time.perf_counter() - started)

    def _publication(self, visit_id: str, page: str, body: str) -> tuple[Arg, ...]:
        """The PUBLISH script's call for one message (push_lua.PUBLISH says the arguments)."""
        args: list[Arg] = [page, body, self.buffer_messages, self.ttl_s, channel_of(visit_id)]
        return self._publish.call(keys_of(visit_id), [*args, self.publish_command, self.node])

    def _route(self, channel: str, payload: bytes) -> None:
        streams = self._streams.get(_visit_of(channel))
        if not streams:
            return
        head, frame = payload.split(b"\n", 1)
        sid, sborn, node, spage = head.decode().split(" ")
        if spage == FORGET:
            self._end(_visit_of(channel))
            return
        message_id, born = int(sid), int(sborn)
        self.received_total += 1
        if node != self.node:
            self.cross_node_total += 1
        for stream in streams:
            if stream.pending is not None:
                stream.pending.append((message_id, born, spage, frame))
            elif stream.deliver(message_id, born, spage, frame, self.ttl_ms):
                self.resyncs_total += 1

    def _confirmed(self, channel: str) -> None:
        if "{" not in channel:
            return  # this node's own channel
        waiting = self._confirming.get(channel)
        if waiting:
            future = waiting.popleft()
            if not waiting:
                del self._confirming[channel]
            if not future.done():
                future.set_result(None)
            return
        # Not asked for: the subscriber reconnected and subscribed again. Messages published while
        # the connection was down never came: read them from the buffer.
        visit_id = _visit_of(channel)
        if visit_id in self._streams:
            for stream in self._streams[visit_id]:
                if stream.pending is None:
                    stream.pending = []
            self._spawn(self._catch_up(visit_id, list(self._streams[visit_id]), subscribe=False))

    async def _subscribe(self, channel: str) -> None:
        if channel in self._subscribed:
            waiting = self._confirming.get(channel)
            if waiting:  # subscribed a moment ago: wait for the same confirmation
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    await asyncio.shield(waiting[-1])
            return
        self._subscribed.add(channel)
        future = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel, deque()).append(future)
        try:
            await self._pubsub.subscribe(channel)
        except RedisError:
            self._subscribed.discard(channel)  # the next page of the visit tries again
            self._confirming[channel].remove(future)
            if not self._confirming[channel]:
                del self._confirming[channel]
            raise
        # Sent: if the connection drops first, the subscriber subscribes again and the confirmation
        # still comes; the timeout only keeps a page from waiting for ever.
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            await asyncio.shield(future)

    async def _unsubscribe(self, channels: list[str]) -> None:
        idle = [c for c in channels if c not in self._subscribed]  # unless taken again since
        if idle:
            with contextlib.suppress(RedisError):
                await self._pubsub.unsubscribe(*idle)

    async def _catch_up(
        self, visit_id: str, streams: list[RemoteStream], subscribe: bool = True
    ) -> None:
        """Subscribe first, then read what the streams missed, then let them go live: nothing
        published meanwhile is lost, and ids drop what would come twice."""
        since = min(s.last_id for s in streams)
        try:
            if subscribe:
                await self._subscribe(channel_of(visit_id))
            raw = await self.link.run(self._read(keys_of(visit_id), [since, self.ttl_ms]))
        except (RedisError, TimeoutError) as exc:
            log.error("push: cannot read the missed messages of %s: %r", visit_id, exc)
            for stream in streams:
                self._go_live(stream, [], "unavailable")
            return
        now, top, born, trimmed = (int(v or 0) for v in raw[:4])
        entries = []
        for entry_id, fields in raw[4]:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            message_id = int(entry_id.split(b"-", 1)[0])
            entries.append((message_id, born, values[b"p"].decode(), values[b"f"]))
        for stream in streams:
            reason = gap(stream.last_id, now, top, born, trimmed, self.ttl_ms)
            self._go_live(stream, entries, reason, born)

    def _go_live(
        self,
        stream: RemoteStream,
        entries: list[tuple[int, int, str, bytes]],
        reason: str | None,
        born: int = 0,
    ) -> None:
        if reason is not None:
            self.resyncs_total += 1
            stream.put(resync_frame(stream.last_id, reason))
        stream.born = born
        pending, stream.pending = stream.pending or [], None
        # In id order: what arrived live may be older than the buffer's first entry (a burst
        # longer than the bound, published while the page subscribed), and ids drop the rest.
        for message_id, entry_born, page, frame in sorted(entries + pending, key=_message_id):
            if stream.deliver(message_id, entry_born, page, frame, self.ttl_ms):
                self.resyncs_total += 1

    # -- operations --

    def collect(self) -> Iterator[Metric]:
        """The cross-node figures for /metrics."""
        for name, doc, value in (
            ("engagement_push_published", "Push messages this node wrote to Redis",
             self.published_total),
            ("engagement_push_publish_failures", "Push messages Redis did not take",
             self.publish_failures_total),
            ("engagement_push_received", "Push messages from Redis pub/sub for a stream here",
             self.received_total),
            ("engagement_push_cross_node", "Push messages published on another node and "
             "delivered to a stream here", self.cross_node_total),
            ("engagement_push_resyncs", "Pages told that messages they missed are lost "
             "(gpe.resync)", self.resyncs_total),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=value)
        yield HistogramMetricFamily(
            "engagement_push_publish_seconds",
            "Redis round trip of a batch of push publications",
            buckets=self._publish_s.cumulative(),
            sum_value=self._publish_s.sum,
        )


def _message_id(item: tuple[int, int, str, bytes]) -> int:
    return item[0]


def _visit_of(channel: str) -> str:
    return channel[channel.index("{") + 1 : channel.index("}")]

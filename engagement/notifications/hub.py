"""Push: messages for a visit's open pages, buffered so that none is lost while a page
connects or reconnects, and numbered per visit so that none is handled twice."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .. import constants as C

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    id: int  # per visit, increasing: the SSE id and the tracker's dedupe key
    page_id: str | None  # None: every page of the visit
    channel: str
    data: dict[str, Any]
    created_ms: int
    frame: bytes  # the SSE frame, encoded once for every page it goes to

    def for_page(self, page_id: str) -> bool:
        return self.page_id is None or self.page_id == page_id


def encode(message_id: int, channel: str, data: dict[str, Any]) -> bytes:
    """A message's SSE frame. Its SSE id is the message's, so a page that reconnects says
    where it stopped; id 0 (``gpe.engaged``, ``gpe.resync``) has none, moving no replay point.
    orjson writes the JSON (compact UTF-8; ``data`` is checked JSON: str keys, safe integers)."""
    payload = orjson.dumps({"id": message_id, "channel": channel, "data": data})
    if message_id:
        return b"id: %d\nevent: message\ndata: %s\n\n" % (message_id, payload)
    return b"event: message\ndata: %s\n\n" % payload


CLOSED = b""  # the frame that ends a stream


def _end_wait(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Stream:
    """One open page: frames to write, in order.

    Lighter than an ``asyncio.Queue`` (four deques and an Event, ~2.5 KiB empty) because one
    reader waits on it: a list of frames and the reader's future while it waits."""

    __slots__ = ("_frames", "_waiter", "page_id", "visit_id")

    def __init__(self, visit_id: str, page_id: str) -> None:
        self.visit_id = visit_id
        self.page_id = page_id
        self._frames: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: bytes) -> None:
        self._frames.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def waiting(self) -> tuple[bytes, ...]:
        """The frames put and not yet taken by the reader."""
        return tuple(self._frames)

    def close(self) -> None:
        """End the stream (the engine stops): the page's EventSource reconnects elsewhere."""
        self.put(CLOSED)

    async def get(self, timeout_s: float) -> bytes | None:
        """The next frame, or None after ``timeout_s`` (time for a heartbeat)."""
        frames = self._frames
        if not frames:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A timer that ends the wait, not asyncio.timeout: no Timeout object, no cancel
            # and uncancel of the task, at every frame of every stream.
            timer = loop.call_later(timeout_s, _end_wait, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not frames:
                return None
        return frames.pop(0)


@dataclass(slots=True)
class Mailbox:
    buffer: deque[Message] | None = None  # bounded: LocalHub's buffer_messages; None: none yet
    seq: int = 0
    streams: list[Stream] = field(default_factory=list)
    touched_ms: int = 0


class PushHub(Protocol):
    """Routes messages to the streams of a visit's pages: in process (``LocalHub``), or across
    nodes through Redis (``cluster.push.RedisHub``)."""

    streams_dropped_total: int  # oldest streams closed at max_streams_per_visit

    @property
    def open_streams(self) -> int: ...

    def publish(
        self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any], now_ms: int
    ) -> object: ...

    async def sent(self) -> None:
        """Wait until every message published so far can be replayed to any page."""

    def connect(self, visit_id: str, page_id: str, since: int, now_ms: int) -> Stream: ...

    def disconnect(self, stream: Stream, now_ms: int) -> None: ...

    def has_stream(self, visit_id: str, page_id: str) -> bool: ...

    def close_all(self) -> None: ...

    def sweep(self, now_ms: int) -> int: ...

    async def buffered(self, visit_id: str) -> list[Message]:
        """The messages held for the visit's pages (a visitor's export)."""

    async def forget(self, visit_id: str) -> int:
        """A visitor's erasure: the visit's streams end and its buffer goes; streams closed."""


class LocalHub:
    """The in-process hub: one node holds every stream."""

    def __init__(
        self,
        ttl_s: float = C.PUSH_MESSAGE_TTL_S,
        max_streams_per_visit: int = C.MAX_STREAMS_PER_VISIT,
        buffer_messages: int = C.PUSH_BUFFER_MESSAGES,
    ) -> None:
        self.ttl_ms = int(ttl_s * 1000)
        self.buffer_messages = buffer_messages
        self.max_streams_per_visit = max_streams_per_visit
        self._boxes: dict[str, Mailbox] = {}
        self.published_total = 0
        self.streams_dropped_total = 0  # oldest streams closed at max_streams_per_visit
        self.recorders: list[Callable[[str, Message], None]] = []  # e.g. the history's journal

    @property
    def open_streams(self) -> int:
        return sum(len(b.streams) for b in self._boxes.values())

    def _box(self, visit_id: str) -> Mailbox:
        box = self._boxes.get(visit_id)
        if box is None:
            box = self._boxes[visit_id] = Mailbox()
        return box

    def _buffer(self, box: Mailbox) -> deque[Message]:
        """The box's buffer, made with its first message (~0.6 KiB: not for every stream)."""
        if box.buffer is None:
            box.buffer = deque(maxlen=self.buffer_messages)
        return box.buffer

    def publish(
        self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any], now_ms: int
    ) -> Message:
        box = self._box(visit_id)
        # Ids grow with the clock, so that they keep growing across a restart of the engine
        # (pages remember the last id they handled).
        box.seq = max(box.seq + 1, now_ms)
        box.touched_ms = now_ms
        message = Message(box.seq, page_id, channel, data, now_ms, encode(box.seq, channel, data))
        buffer = self._buffer(box)
        buffer.append(message)
        oldest = now_ms - self.ttl_ms
        while buffer[0].created_ms < oldest:  # past the TTL no page can ask for it again
            buffer.popleft()
        for stream in box.streams:
            if message.for_page(stream.page_id):
                stream.put(message.frame)
        self.published_total += 1
        for record in self.recorders:
            record(visit_id, message)
        return message

    async def sent(self) -> None:
        """Nothing to wait for: published means buffered here."""

    def restore(self, messages: Iterable[tuple[str, Message]], now_ms: int) -> int:
        """Take back the messages a stopped engine had buffered (per visit, in id order), so
        that pages reconnecting to this one still get what they missed."""
        count = 0
        for visit_id, message in messages:
            box = self._box(visit_id)
            self._buffer(box).append(message)
            box.seq = max(box.seq, message.id)
            box.touched_ms = now_ms
            count += 1
        return count

    def connect(self, visit_id: str, page_id: str, since: int, now_ms: int) -> Stream:
        """Open a page's stream; messages after ``since`` still buffered come first."""
        box = self._box(visit_id)
        box.touched_ms = now_ms
        stream = Stream(visit_id, page_id)
        oldest = now_ms - self.ttl_ms
        for message in box.buffer or ():
            if message.id > since and message.created_ms >= oldest and message.for_page(page_id):
                stream.put(message.frame)
        box.streams.append(stream)
        if len(box.streams) > self.max_streams_per_visit:
            # The oldest is most likely a tab gone without a word (found out only at the next
            # heartbeat); if it is still open, its EventSource reconnects.
            box.streams.pop(0).close()
            self.streams_dropped_total += 1
        return stream

    def disconnect(self, stream: Stream, now_ms: int) -> None:
        box = self._boxes.get(stream.visit_id)
        if box is not None:
            box.touched_ms = now_ms
            if stream in box.streams:
                box.streams.remove(stream)

    def has_stream(self, visit_id: str, page_id: str) -> bool:
        box = self._boxes.get(visit_id)
        return box is not None and any(s.page_id == page_id for s in box.streams)

    async def buffered(self, visit_id: str) -> list[Message]:
        """The messages held for the visit's pages (a visitor's export)."""
        box = self._boxes.get(visit_id)
        return list(box.buffer) if box is not None and box.buffer is not None else []

    async def forget(self, visit_id: str) -> int:
        """A visitor's erasure: the visit's streams end and its buffer goes; streams closed."""
        box = self._boxes.pop(visit_id, None)
        if box is None:
            return 0
        for stream in box.streams:
            stream.close()
        return len(box.streams)

    def close_all(self) -> None:
        for box in self._boxes.values():
            for stream in box.streams:
                stream.close()

    def sweep(self, now_ms: int) -> int:
        """Forget mailboxes with no stream and nothing younger than the TTL."""
        oldest = now_ms - self.ttl_ms
        idle = [v for v, b in self._boxes.items() if not b.streams and b.touched_ms < oldest]
        for visit_id in idle:
            del self._boxes[visit_id]
        return len(idle)

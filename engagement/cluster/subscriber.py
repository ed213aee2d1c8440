"""The node's pub/sub connection to Redis, read in bulk.

redis-py's ``PubSub.get_message`` parses one message per call, each through its retry wrapper,
a timeout context and the pure-Python RESP parser (~20 us of CPU per message already in the
socket's buffer, more when it waits), and the reading task wakes once per message. Here one
task reads what the socket holds, parses every complete reply in it and hands the messages
over in one go. The connection speaks the few replies of the pub/sub mode (RESP2: arrays of
bulk strings and integers, simple strings, errors), reconnects by itself with a backoff,
subscribes again to every channel it had (so the owner sees confirmations it did not ask for,
as with redis-py, and catches its pages up), and pings Redis when it heard nothing for
``HEALTH_S`` so that a dead connection is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .redis import SOCKET_TIMEOUT_S, redacted
from .resp import Endpoint, Incomplete, command, parse

log = logging.getLogger(__name__)

HEALTH_S = 30.0  # silent this long: PING; silent as long again: the connection is dead
READ_BYTES = 1 << 16
BACKOFF_S = (0.05, 1.0)  # first and longest wait between reconnection attempts


class Subscriber:
    """Subscribes to channels; calls ``on_message(channel, payload)`` for each publication and
    ``on_subscribed(channel)`` for each confirmation (also those of a re-subscription after a
    reconnection), from the reading task, in the order Redis sent them."""

    def __init__(
        self,
        url: str,
        on_message: Callable[[str, bytes], None],
        on_subscribed: Callable[[str], None],
        sharded: bool = False,
        on_moved: Callable[[], None] | None = None,
    ) -> None:
        self.url = redacted(url)
        # Sharded pub/sub (Redis Cluster, one connection per shard: shard_pubsub.py). Redis
        # unsubscribes the channels of a slot that moved away, and refuses one it does not
        # serve (MOVED): both, and a lost connection, call ``on_moved``.
        self._verbs = ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self._sharded = sharded
        self.on_moved = on_moved
        self._endpoint = Endpoint.from_url(url)
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.channels: set[str] = set()  # subscribed (or to be, once connected again)
        # Sharded: (verb, channel) of each command sent on this connection and not answered
        # yet, oldest first (Redis answers them in order), to know which channel an error
        # answer refuses.
        self._unanswered: deque[tuple[bytes, str]] = deque()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, *channels: str) -> None:
        """Connect and subscribe (raises when Redis cannot be reached); then keep reading."""
        self.channels.update(channels)
        reader = await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._run(reader))

    async def subscribe(self, *channels: str) -> None:
        """Send SUBSCRIBE (the confirmation comes through ``on_subscribed``); a connection
        that is down raises, and the caller may try again."""
        if self._writer is None:
            raise RedisConnectionError(f"pub/sub connection to {self.url} is down")
        self.channels.update(channels)
        self._writer.write(self._commands(self._verbs[0], channels))

    async def unsubscribe(self, *channels: str) -> None:
        self.channels.difference_update(channels)
        if self._writer is not None:
            self._writer.write(self._commands(self._verbs[1], channels))

    def _commands(self, verb: str, channels: Iterable[str]) -> bytes:
        """One command for all the channels; sharded, one per channel: a shard serves many
        slots, and Redis refuses an SSUBSCRIBE whose channels are of several (CROSSSLOT)."""
        if self._sharded:
            sent = [(verb.lower().encode(), channel) for channel in channels]
            self._unanswered.extend(sent)
            return b"".join(command(verb, channel) for _, channel in sent)
        return command(verb, *channels)

    def _answered(self, kind: bytes, channel: str) -> bool:
        """Whether this answer is the one to the oldest command not answered yet."""
        if self._unanswered and self._unanswered[0] == (kind, channel):
            self._unanswered.popleft()
            return True
        return False

    def reconnect(self) -> None:
        """Let the connection go (the master moved): the reading task opens it again."""
        self._close()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close()

    # -- the connection --

    async def _connect(self) -> asyncio.StreamReader:
        """Open (logged in), subscribe to every channel; the reader, once all is sent."""
        async with asyncio.timeout(SOCKET_TIMEOUT_S):
            reader, writer = await self._endpoint.open()
            try:
                if self.channels:
                    writer.write(self._commands(self._verbs[0], sorted(self.channels)))
                await writer.drain()
            except BaseException:
                writer.transport.abort()
                raise
        self._writer = writer
        return reader

    def _close(self) -> None:
        self._unanswered.clear()
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None

    async def _run(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                await self._read(reader)
                log.warning("push: Redis closed the pub/sub connection; reconnecting")
            except (OSError, RedisError, TimeoutError) as exc:
                log.warning("push: pub/sub connection lost: %r; reconnecting", exc)
            self._close()
            if self.on_moved is not None:
                self.on_moved()  # maybe a failover: the shard's slots are served elsewhere
            reader = await self._reconnect()

    async def _reconnect(self) -> asyncio.StreamReader:
        wait_s = BACKOFF_S[0]
        while True:
            await asyncio.sleep(wait_s)
            try:
                return await self._connect()
            except (OSError, RedisError, TimeoutError) as exc:
                log.warning("push: cannot reach Redis at %s for pub/sub: %r", self.url, exc)
                if self.on_moved is not None:  # a shard that died: by now the slot map may
                    self.on_moved()  # name the replica that took its place
                wait_s = min(BACKOFF_S[1], wait_s * 2)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Until the connection ends: every read's complete replies, dispatched in order."""
        buf = b""
        pinged = False
        while True:
            try:
                async with asyncio.timeout(HEALTH_S):
                    data = await reader.read(READ_BYTES)
            except TimeoutError:
                if pinged:
                    raise TimeoutError(f"no answer to PING in {HEALTH_S:.0f} s") from None
                if self._writer is not None:
                    self._writer.write(command("PING"))
                pinged = True
                continue
            if not data:
                return
            pinged = False
            buf = buf + data if buf else data
            pos = 0
            try:
                while pos < len(buf):
                    reply, pos = parse(buf, pos)
                    self._dispatch(reply)
            except Incomplete:
                pass
            buf = buf[pos:]

    def _dispatch(self, reply: Any) -> None:
        try:
            if isinstance(reply, list) and reply:
                kind = reply[0]
                if kind == b"message" or kind == b"smessage":
                    self.on_message(reply[1].decode(), reply[2])
                elif kind == b"subscribe" or kind == b"ssubscribe":
                    channel = reply[1].decode()
                    self._answered(kind, channel)
                    self.on_subscribed(channel)
                elif kind == b"sunsubscribe" and self.on_moved is not None:
                    channel = reply[1].decode()
                    asked = self._answered(kind, channel)
                    if not asked and channel in self.channels:  # its slot moved away
                        self.channels.discard(channel)
                        self.on_moved()
            elif isinstance(reply, RedisError):
                refused = self._unanswered.popleft() if self._unanswered else None
                if self.on_moved is not None and refused is not None:
                    # MOVED (the map this node read still named this shard), CLUSTERDOWN...:
                    # not subscribed here; the map is read again and the channel asked for
                    # where it says.
                    if refused[0] == b"ssubscribe":
                        self.channels.discard(refused[1])
                    self.on_moved()
                elif str(reply).startswith("MOVED") and self.on_moved is not None:
                    self.on_moved()
                else:
                    log.error("push: Redis refused a pub/sub command: %s", reply)
        except Exception:  # one message's handling failed: the others still go through
            log.exception("push: handling a pub/sub message failed")

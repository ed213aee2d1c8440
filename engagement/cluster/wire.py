"""The hot path's connection to Redis: one socket, many callers, replies in order.

Every event's log script (and the visitor's revision beside it) went through a redis-py
pipeline: a connection taken from the pool, the retry wrapper, the pipeline's own bookkeeping
and the pure-Python RESP3 parser, ~100 us of the node's CPU per request (py-spy, about 40 % of
a cluster node's ingest). Here a request's commands are packed once and written to one shared
connection; a reading task parses each read of the socket whole and answers the waiting
requests in the order they were written (Redis answers in order on a connection). Requests
of one event-loop turn share its socket writes and reads.

Failures behave as redis-py's did: a dropped connection is opened again and the request sent
again (``CONNECT_RETRIES`` times, backing off), an answer later than ``SOCKET_TIMEOUT_S`` fails
the request (and the connection, since later answers would be out of step), errors come back
as redis-py's exceptions (``ResponseError``...), so callers catch ``RedisError`` as before.
Scripts are sent by SHA; a connection loads each script once (``SCRIPT LOAD`` ahead of its
first use). When Redis forgot them (restarted, ``SCRIPT FLUSH``), the commands answered
NOSCRIPT did not run: they alone are sent again after loading their scripts, and the others'
answers are kept (a redis-py pipeline failed the whole request instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import BusyLoadingError, NoScriptError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .resp import Arg, Endpoint, Incomplete, command, parse

READ_BYTES = 1 << 16
# Answers from a server this node should no longer talk to: a master that failed over (now a
# replica: READONLY) or one still loading its data. The commands did not run: connect again
# (under Sentinel, to the master the sentinels name now) and send them again.
MOVED_ON = (ReadOnlyError, BusyLoadingError)


@dataclass(frozen=True)
class Script:
    """A Lua script, sent by its SHA."""

    lua: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.lua.encode()).hexdigest())

    def call(self, keys: Sequence[str], args: Sequence[Arg]) -> tuple[Arg, ...]:
        """The EVALSHA command running it on ``keys`` with ``args``."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


class Wire:
    """One multiplexed connection (opened at the first request, again after a failure)."""

    def __init__(self, url: str, timeout_s: float, retries: int) -> None:
        self._endpoint = Endpoint.from_url(url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.scripts: dict[str, str] = {}  # SHA -> Lua, of every script seen
        self._conn: _Connection | None = None
        self._opening: asyncio.Future[_Connection] | None = None

    async def execute(self, *commands: Sequence[Arg]) -> list[Any]:
        """Send ``commands`` in one write; their answers, in order (the first error raised)."""
        if not commands:
            return []
        answers = await self.round_trip(commands)
        forgot = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if forgot:  # those did not run: load the scripts again and send them once more
            again = await self.round_trip([commands[i] for i in forgot])
            for i, answer in zip(forgot, again, strict=True):
                answers[i] = answer
        for answer in answers:
            if isinstance(answer, RedisError):
                raise answer
        return answers

    async def round_trip(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """One round trip (the connection opened again as needed): the answers, errors as
        values (a NOSCRIPT answer makes the next round trip load the scripts again)."""
        attempt = 0
        while True:
            try:
                conn = await self._connection()
                answers = await conn.request(commands, self.timeout_s)
                if moved := next((a for a in answers if isinstance(a, MOVED_ON)), None):
                    # A replica now (failed over), or loading: nothing was written there.
                    conn.close(RedisConnectionError(str(moved)))
                    raise RedisConnectionError(f"Redis answered {moved}: connecting again")
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                attempt += 1
                if attempt > self.retries:
                    if isinstance(exc, RedisError):
                        raise
                    raise RedisConnectionError(f"Redis: {exc!r}") from exc
                await asyncio.sleep(min(0.5, 0.01 * 2**attempt))
                continue
            if any(isinstance(answer, NoScriptError) for answer in answers):
                conn.loaded.clear()  # Redis forgot them (restarted, flushed): load them again
            return answers

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close(RedisConnectionError("closed"))
            self._conn = None

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._opening is None:  # one opening at a time; every request waits for it
            self._opening = asyncio.get_running_loop().create_future()
            try:
                conn = self._conn = await self._open()
                self._opening.set_result(conn)
            except BaseException as exc:
                self._opening.set_exception(exc)
                self._opening.exception()  # retrieved: maybe nobody else waits
                raise
            finally:
                self._opening = None
            return conn
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Connection:
        async with asyncio.timeout(self.timeout_s):
            reader, writer = await self._endpoint.open()  # logged in, on its database
        return _Connection(reader, writer, self.scripts)


class _Connection:
    """A socket with the requests waiting for its answers, oldest first."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scripts: dict[str, str]
    ) -> None:
        self.writer = writer
        self.scripts = scripts
        self.loaded: set[str] = set()  # SHAs loaded through this connection
        self.closed = False
        # (answers expected, answers to skip first (SCRIPT LOAD), their future)
        self.waiting: deque[tuple[int, int, asyncio.Future[list[Any]]]] = deque()
        self.reading = asyncio.get_running_loop().create_task(self._read(reader))

    async def request(self, commands: Sequence[Sequence[Arg]], timeout_s: float) -> list[Any]:
        if self.closed:
            raise RedisConnectionError("the connection to Redis was closed")
        loads = []
        for cmd in commands:
            if cmd[0] == "EVALSHA" and (sha := str(cmd[1])) not in self.loaded:
                loads.append(command("SCRIPT", "LOAD", self.scripts[sha]))
                self.loaded.add(sha)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.waiting.append((len(commands), len(loads), future))
        self.writer.write(b"".join(loads + [command(*cmd) for cmd in commands]))
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            # Later answers would be taken for the next requests': this socket is done.
            self.close(RedisTimeoutError(f"no answer from Redis in {timeout_s:.1f} s"))
            raise RedisTimeoutError(f"no answer from Redis in {timeout_s:.1f} s") from None

    def close(self, exc: Exception) -> None:
        if self.closed:
            return
        self.closed = True
        self.writer.transport.abort()
        self.reading.cancel()
        while self.waiting:
            future = self.waiting.popleft()[2]
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: its request may have timed out already

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        answers: list[Any] = []
        skip = 0
        try:
            while True:
                data = await reader.read(READ_BYTES)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                buf = buf + data if buf else data
                pos = 0
                with contextlib.suppress(Incomplete):
                    while pos < len(buf) and self.waiting:
                        answer, pos = parse(buf, pos)
                        expected, loads, future = self.waiting[0]
                        if skip < loads:  # a SCRIPT LOAD's answer (an error shows at EVALSHA)
                            skip += 1
                            continue
                        answers.append(answer)
                        if len(answers) == expected:
                            self.waiting.popleft()
                            if not future.done():
                                future.set_result(answers)
                            answers, skip = [], 0
                buf = buf[pos:]
        except (OSError, RedisError) as exc:
            self.close(exc if isinstance(exc, RedisError) else RedisConnectionError(repr(exc)))

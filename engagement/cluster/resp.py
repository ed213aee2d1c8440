"""The few RESP2 replies and commands the node's own Redis connections speak (the pub/sub
connection, and the hot path's multiplexed connection): arrays of bulk strings and integers,
simple strings, errors. Pure Python, parsing a whole buffer at once."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import parse_url
from redis.exceptions import (
    BusyLoadingError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

if TYPE_CHECKING:
    from .sentinel import Sentinels

Arg = str | bytes | int | float
# Errors by their code, as redis-py names them. READONLY (a replica: the master failed over)
# and LOADING (a server still reading its data) mean the command did not run, there.
ERRORS: dict[str, type[RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "LOADING": BusyLoadingError,
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The server a ``redis://``, ``rediss://`` or ``unix://`` URL names, or the master the
    sentinels of a ``redis+sentinel://`` URL name (sentinel.py), and how to log in."""

    options: dict[str, Any]
    tls: bool
    sentinels: Sentinels | None = None

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        from . import sentinel  # which speaks through this module

        if sentinel.is_sentinel(url):
            config = sentinel.parse_url(url)
            login = {"username": config.username, "password": config.password, "db": config.db}
            return cls(login, False, sentinel.Sentinels(config))
        return cls(dict(parse_url(url)), url.startswith("rediss://"))

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection, logged in, on the URL's database; under Sentinel, to the master the
        sentinels name now, which must say it is one (a replica is refused)."""
        o = self.options
        if self.sentinels is not None:
            host, port = await self.sentinels.master_address()
            reader, writer = await asyncio.open_connection(host, port)
        elif "path" in o:
            reader, writer = await asyncio.open_unix_connection(o["path"])
        else:
            context = ssl.create_default_context() if self.tls else None
            reader, writer = await asyncio.open_connection(
                o.get("host", "localhost"), o.get("port", 6379), ssl=context
            )
        try:
            await self._hello(reader, writer)
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        o = self.options
        hello: list[tuple[Arg, ...]] = []
        if o.get("password") is not None:
            hello.append(("AUTH", *([o["username"]] if o.get("username") else []), o["password"]))
        if o.get("db"):
            hello.append(("SELECT", o["db"]))
        if self.sentinels is not None:
            hello.append(("ROLE",))
        if not hello:
            return
        writer.write(b"".join(command(*cmd) for cmd in hello))
        answers = await replies(reader, len(hello))
        if self.sentinels is not None and answers[-1][0] != b"master":
            role = answers[-1][0].decode()
            raise RedisConnectionError(
                f"the server the sentinels named as master {self.sentinels.master!r} is a "
                f"{role} (a failover is under way): asking them again"
            )


class Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply at ``pos``: (value, position after it). Bulk strings are bytes, errors
    are RedisError instances (not raised); Incomplete when the reply is not all there."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    kind, line, pos = buf[pos], buf[pos + 1 : end], end + 2
    if kind == 0x24:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise Incomplete
        return buf[pos : pos + size], pos + size + 2
    if kind == 0x2A:  # * array
        items = []
        for _ in range(int(line)):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 0x3A:  # : integer
        return int(line), pos
    if kind == 0x2B:  # + simple string
        return line, pos
    if kind == 0x2D:  # - error, as redis-py names them (a script Redis forgot: NoScriptError)
        text = line.decode(errors="replace")
        return ERRORS.get(text.split(" ", 1)[0], ResponseError)(text), pos
    raise RedisError(f"unexpected reply from Redis: {buf[pos - len(line) - 3 : end]!r}")


def command(*parts: Arg) -> bytes:
    """A command in RESP (an array of bulk strings; numbers as redis-py writes them)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, str):
            data = part.encode()
        elif isinstance(part, bytes):
            data = part
        else:
            data = repr(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def replies(reader: asyncio.StreamReader, count: int) -> list[Any]:
    """The next ``count`` replies on a connection that holds no others (a handshake's); the
    first error raised."""
    buf, pos, answers = b"", 0, list[Any]()
    while len(answers) < count:
        try:
            answer, pos = parse(buf, pos)
        except Incomplete:
            data = await reader.read(1 << 12)
            if not data:
                raise RedisConnectionError("Redis closed the connection") from None
            buf += data
            continue
        if isinstance(answer, RedisError):
            raise answer
        answers.append(answer)
    return answers


async def answers_noting_noscript(execute: Awaitable[list[Any]], loaded: set[str]) -> list[Any]:
    """A pipeline's answers. When Redis answered NOSCRIPT (it forgot its scripts: restarted,
    flushed, a new primary), the SHAs known to be loaded are forgotten too, so that the next
    pipeline loads them again."""
    try:
        answers = await execute
    except NoScriptError:
        loaded.clear()
        raise
    if any(isinstance(answer, NoScriptError) for answer in answers):
        loaded.clear()
    return answers

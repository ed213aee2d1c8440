"""The few RESP2 replies and commands the node's own Redis connections speak (the pub/sub
connection, and the hot path's multiplexed connection): arrays of bulk strings and integers,
simple strings, errors. Pure Python, parsing a whole buffer at once."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import parse_url
from redis.exceptions import NoScriptError, RedisError, ResponseError

Arg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The server a ``redis://``, ``rediss://`` or ``unix://`` URL names, and how to log in."""

    options: dict[str, Any]
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        return cls(dict(parse_url(url)), url.startswith("rediss://"))

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        o = self.options
        if "path" in o:
            return await asyncio.open_unix_connection(o["path"])
        context = ssl.create_default_context() if self.tls else None
        return await asyncio.open_connection(
            o.get("host", "localhost"), o.get("port", 6379), ssl=context
        )

    def auth(self) -> tuple[Arg, ...] | None:
        """The AUTH command the URL asks for, if any."""
        o = self.options
        if o.get("password") is None:
            return None
        return ("AUTH", *([o["username"]] if o.get("username") else []), o["password"])


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
        return (NoScriptError if text.startswith("NOSCRIPT") else ResponseError)(text), pos
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

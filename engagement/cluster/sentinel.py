"""Redis Sentinel: which server is the master of a name now.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/<master-name>[/<db>]`` names
sentinels and a master's name, not a server. Every connection the node opens asks the
sentinels for the master's address first, as Sentinel's client guidelines say: the sentinels
are tried in turn (the last one that answered first), ``SENTINEL get-master-addr-by-name``
gives the address, and the server must then say ``ROLE`` master (resp.py's ``Endpoint``). A
connection that fails later, or meets a replica (``READONLY``) or a server still loading
(``LOADING``), is opened again the same way, so a node follows a failover.
The user and password log in to the master; the sentinels are asked without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .resp import Arg, Incomplete, command, parse, replies

log = logging.getLogger(__name__)

SCHEMES = ("redis+sentinel://",)
SENTINEL_PORT = 26379  # Sentinel's own default port
SENTINEL_TIMEOUT_S = 0.5  # per sentinel (the guidelines say a few hundred ms): a dead one
# must not hold up the others
SWITCH_CHANNEL = b"+switch-master"  # a sentinel's announcement: "<name> <old host> <old port>
# <new host> <new port>"
HEALTH_S = 30.0  # a sentinel silent this long is pinged; silent as long again, left
WATCH_BACKOFF_S = (0.05, 1.0)  # first and longest wait before asking the sentinels again
READ_BYTES = 1 << 12


class MasterNotFound(RedisConnectionError):
    """No sentinel answered with the master's address (all down, or none knows the name)."""


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    username: str | None
    password: str | None
    db: int


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEMES)


def parse_url(url: str) -> SentinelUrl:
    """The sentinels, master name, login and database of ``url``; ValueError naming what is
    wrong."""
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    user, _, secret = userinfo.partition(":")  # as redis-py reads redis://user:password@
    sentinels = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
        if not name or (colon and not port.isdigit()):
            raise ValueError(f"redis_url: bad sentinel address {host!r}")
        sentinels.append((name, int(port) if port else SENTINEL_PORT))
    master, _, db = path.split("?", 1)[0].partition("/")
    if not master:
        raise ValueError(
            "redis_url names no master: "
            "redis+sentinel://host:port[,host:port...]/<master-name>[/<db>]"
        )
    if db and not db.strip("/").isdigit():
        raise ValueError(f"redis_url: the database {db!r} is not a number")
    return SentinelUrl(
        tuple(sentinels),
        unquote(master),
        unquote(user) or None,
        unquote(secret) or None,
        int(db.strip("/") or 0),
    )


class Sentinels:
    """The sentinels of one master, the one that answered last first."""

    def __init__(self, config: SentinelUrl) -> None:
        self.master = config.master
        self.addresses = list(config.sentinels)

    async def master_address(self) -> tuple[str, int]:
        """The master's (host, port), from the first sentinel that knows it."""
        errors = []
        for address in list(self.addresses):
            try:
                async with asyncio.timeout(SENTINEL_TIMEOUT_S):
                    answer = await ask(address, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master)
            except (OSError, RedisError, TimeoutError) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc!r}")
                continue
            if not answer:
                errors.append(f"{address[0]}:{address[1]}: does not know {self.master!r}")
                continue
            self.addresses.remove(address)
            self.addresses.insert(0, address)
            host, port = answer
            return host.decode(), int(port)
        raise MasterNotFound(f"no sentinel gave the master {self.master!r}: {'; '.join(errors)}")


async def ask(address: tuple[str, int], *cmd: Arg) -> Any:
    """One command to a server on a connection of its own; its answer (errors raised)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(command(*cmd))
        [answer] = await replies(reader, 1)
        return answer
    finally:
        writer.transport.abort()


class SwitchWatch:
    """Hears a sentinel announce that the master moved (``+switch-master``, at the end of a
    failover) and calls ``on_switch`` then. After a ``SENTINEL FAILOVER`` the old master is
    alive and still takes writes until the sentinels turn it into a replica, about 10 s
    later (only then does it drop its clients): connections still open to it must be let go
    at the switch, or what the node writes meanwhile is lost, and the nodes split."""

    def __init__(self, sentinels: Sentinels, on_switch: Callable[[], Awaitable[None]]) -> None:
        self.sentinels = sentinels
        self.on_switch = on_switch
        self.switches = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        wait_s = WATCH_BACKOFF_S[0]
        while True:
            for address in list(self.sentinels.addresses):
                try:
                    await self._listen(address)
                except (OSError, RedisError, TimeoutError) as exc:
                    log.warning("Sentinel %s:%s: %r; asking the next", *address, exc)
            await asyncio.sleep(wait_s)
            wait_s = min(WATCH_BACKOFF_S[1], wait_s * 2)

    async def _listen(self, address: tuple[str, int]) -> None:
        async with asyncio.timeout(SENTINEL_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(command("SUBSCRIBE", SWITCH_CHANNEL))
            buf, pinged = b"", False
            while True:
                try:
                    async with asyncio.timeout(HEALTH_S):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    if pinged:
                        raise
                    writer.write(command("PING"))
                    pinged = True
                    continue
                if not data:
                    raise RedisConnectionError("the sentinel closed the connection")
                buf, pinged = buf + data, False
                pos = 0
                with contextlib.suppress(Incomplete):
                    while pos < len(buf):
                        message, pos = parse(buf, pos)
                        await self._heard(message)
                buf = buf[pos:]
        finally:
            writer.transport.abort()

    async def _heard(self, message: Any) -> None:
        if isinstance(message, RedisError):
            raise message
        if not (isinstance(message, list) and message[:2] == [b"message", SWITCH_CHANNEL]):
            return  # the subscription's confirmation, a PING's answer
        name, *_, host, port = message[2].decode().split(" ")
        if name == self.sentinels.master:
            self.switches += 1
            log.warning("Redis Sentinel: master %r moved to %s:%s", name, host, port)
            await self.on_switch()

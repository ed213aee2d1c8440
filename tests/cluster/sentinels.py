"""A Redis master, its replica and a Sentinel watching them: real processes on free ports.

Nothing is written to disk (``--save "" --appendonly no``); Sentinel is told to act fast
(``down-after-milliseconds`` 1000) so that a failover takes seconds, not the default minutes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import unused_port

REDIS_SERVER = "/usr/bin/redis-server"
MASTER_NAME = "engagement"
DOWN_AFTER_MS = 1000  # a master silent this long is down (Sentinel's default: 30 s)
FAILOVER_TIMEOUT_MS = 5000
DEADLINE_S = 30  # for a state to be reached, not a timing assertion


def redis_server() -> str:
    """Debian's redis-server (package redis-server; .ci/run installs it): required in CI."""
    found = REDIS_SERVER if Path(REDIS_SERVER).is_file() else shutil.which("redis-server")
    if found is not None:
        return found
    message = f"{REDIS_SERVER} is absent (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the Sentinel tests")
    pytest.skip(f"{message}; set CI to make this a failure")


@dataclass
class Server:
    """One redis-server process (a data server or a sentinel) in its own folder."""

    name: str
    folder: Path
    port: int
    args: list[str]
    proc: asyncio.subprocess.Process | None = None

    async def start(self, binary: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "server.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            binary, *self.args, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        await self.wait_answering()

    async def wait_answering(self) -> None:
        client = aioredis.Redis(port=self.port, socket_timeout=1)
        try:
            await until(lambda: _pings(client), f"{self.name} answers on {self.port}")
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """kill -9: nothing said to the clients, nothing replicated after this instant."""
        assert self.proc is not None
        assert self.proc.returncode is None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)  # nothing on disk to save
            await self.proc.wait()

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Sentinels:
    """A master, one replica and one sentinel (quorum 1) of the master ``MASTER_NAME``."""

    folder: Path
    servers: list[Server] = field(default_factory=list)
    silent_port: int = field(default_factory=unused_port)  # a sentinel that is not there

    @property
    def master(self) -> Server:
        return self.servers[0]

    @property
    def replica(self) -> Server:
        return self.servers[1]

    @property
    def sentinel(self) -> Server:
        return self.servers[2]

    def url(self, db: int = 0) -> str:
        """The nodes' redis_url. A sentinel that does not answer comes first: a node asks the
        next one (Sentinel's client guidelines), as it must when one of several is down."""
        sentinels = f"127.0.0.1:{self.silent_port},127.0.0.1:{self.sentinel.port}"
        return f"redis+sentinel://{sentinels}/{MASTER_NAME}/{db}"

    async def start(self) -> None:
        binary = redis_server()
        master, replica, sentinel = unused_port(), unused_port(), unused_port()
        data = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.servers = [
            Server("master", self.folder / "master", master, ["--port", str(master), *data]),
            Server(
                "replica",
                self.folder / "replica",
                replica,
                ["--port", str(replica), *data, "--replicaof", "127.0.0.1", str(master)],
            ),
        ]
        conf = self.folder / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True)
        conf.write_text(
            f"port {sentinel}\n"
            "bind 127.0.0.1\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        )
        self.servers.append(Server("sentinel", conf.parent, sentinel, [str(conf), "--sentinel"]))
        for server in self.servers:
            await server.start(binary)
        await until(self._replica_known, "the sentinel knows the replica, in sync")

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers))

    async def master_port(self) -> int:
        """The master's port, as the sentinel says now."""
        client = aioredis.Redis(port=self.sentinel.port, socket_timeout=2)
        try:
            _, port = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
            )
            return int(port)
        finally:
            await client.aclose()

    async def replicated(self) -> None:
        """Wait until the replica has acknowledged every write the master took (``WAIT``):
        replication is asynchronous, so a master killed before that loses its last writes
        (docs/cluster.md, "Redis Sentinel"), more often the sooner after the replica's sync."""
        client = aioredis.Redis(port=self.master.port, socket_timeout=DEADLINE_S + 1)
        try:
            acked = await client.execute_command("WAIT", 1, DEADLINE_S * 1000)
        finally:
            await client.aclose()
        assert acked == 1, "never: the replica acknowledged the master's writes"

    async def failover(self) -> None:
        """``SENTINEL FAILOVER``: the replica becomes the master, the master its replica."""
        client = aioredis.Redis(port=self.sentinel.port, socket_timeout=2)
        try:
            await client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        finally:
            await client.aclose()
        await self.switched()

    async def switched(self) -> None:
        """Wait until the sentinel names the replica as the master, and it says it is one."""
        await until(self._switched, "the sentinel names the replica as the master")

    async def _switched(self) -> bool:
        if await self.master_port() != self.replica.port:
            return False
        return await role(self.replica.port) == "master"

    async def _replica_known(self) -> bool:
        """The sentinel lists the replica as connected, the replica is in sync (the sentinel
        itself hears of the sync only at its next INFO, up to 10 s later) and the master
        streams its writes to it."""
        client = aioredis.Redis(port=self.sentinel.port, socket_timeout=2, decode_responses=True)
        try:
            replicas = await client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
        finally:
            await client.aclose()
        known = [r for r in replicas if r["port"] == str(self.replica.port)]
        if not known or known[0]["flags"] != "slave":
            return False
        if (await replication_info(self.replica.port)).get("master_link_status") != "up":
            return False
        # The master streams its writes to a replica only once it is online there (after the
        # replica's first acknowledgement, which follows its load): writes before that wait in
        # the master's buffer, and a failover meanwhile loses them.
        info = await replication_info(self.master.port)
        return bool(info.get("slave0", {}).get("state") == "online")


async def replication_info(port: int) -> dict[str, Any]:
    """``INFO replication`` of the server on ``port``."""
    client = aioredis.Redis(port=port, socket_timeout=2, decode_responses=True)
    try:
        info: dict[str, Any] = await client.info("replication")
        return info
    finally:
        await client.aclose()


async def role(port: int) -> str:
    """What the server on ``port`` says it is: master or slave."""
    client = aioredis.Redis(port=port, socket_timeout=2)
    try:
        answer = await client.execute_command("ROLE")
        return str(answer[0].decode() if isinstance(answer[0], bytes) else answer[0])
    finally:
        await client.aclose()


async def _pings(client: aioredis.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (OSError, aioredis.ConnectionError, aioredis.ResponseError):
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``check()`` to hold, up to ``DEADLINE_S``."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)

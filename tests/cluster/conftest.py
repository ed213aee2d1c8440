"""Two engine nodes in one test process: each its own app, the same Redis database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from engagement.app import create_app
from engagement.cluster.redis import RedisLink
from engagement.settings import Settings

from ..conftest import API_KEY, SITE

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


class Cuttable:
    """A TCP proxy between the nodes and Redis: ``cut`` drops every connection and refuses
    new ones (Redis "restarted" without touching the machine's server); ``restore`` reopens."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.open()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[tuple[Cuttable, str]]:
    """A proxy to the test's Redis database, and the URL that goes through it."""
    parts = urlsplit(redis_url)
    proxy = Cuttable(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.open()
    try:
        yield proxy, f"redis://127.0.0.1:{proxy.port}{parts.path}"
    finally:
        with contextlib.suppress(Exception):
            await proxy.cut()


def node_settings(
    tmp_path: Path, name: str, redis_url: str, database_url: str | None, **overrides: Any
) -> Settings:
    """A node's settings: its own data folder, the shared Redis and PostgreSQL history, the
    test strategies."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / name,
        "strategies_dir": tmp_path / "strategies",
        "api_keys": [API_KEY],
        "allowed_origins": [SITE, "http://localhost:*", "http://127.0.0.1:*"],
        "history_flush_interval_s": 0.05,
        "redis_url": redis_url,
        "database_url": database_url,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_node(
    database_url: str, redis_url: str, aiohttp_client: ClientFactory, tmp_path: Path
) -> Callable[..., Awaitable[Client]]:
    """Start one more node (``name``) on ``redis_url``, all on one PostgreSQL schema.

    The test's PostgreSQL schema and Redis database come first so that they are dropped and
    let go after the nodes stopped (a node may still write while it stops)."""

    async def start(name: str, redis_url: str, **overrides: Any) -> Client:
        settings = node_settings(tmp_path, name, redis_url, database_url, **overrides)
        app: web.Application = create_app(settings)
        return await aiohttp_client(app)

    return start


async def fewest_round_trips(
    link: RedisLink, act: Callable[[], Awaitable[Any]], tries: int = 3
) -> int:
    """The fewest Redis round trips ``act`` took in ``tries`` tries. The node's own timers
    talk to Redis too (every 0.25 s): a tick inside a try adds to its count and never takes
    away, so the fewest is what ``act`` itself costs (a request that took one more every
    time still shows it)."""
    counts = []
    for _ in range(tries):
        before = link.round_trips
        await act()
        counts.append(link.round_trips - before)
    return min(counts)

"""Several nodes on one PostgreSQL: what one node writes the others read; a callback is sent
by one node only, and by another when the node holding it dies; PostgreSQL briefly down does
not stop ingest, and the writes catch up (issue 11, items 4 and 6)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engagement.api.state import HISTORY
from engagement.app import create_app
from engagement.db.connect import open_database
from engagement.db.migrations import migrate
from engagement.launchers.outbox import CallbackOutbox, Delivery, GMSSettings
from engagement.settings import Settings

from .conftest import AUTH, ClientFactory, Factory, post_events, url
from .servers import POSTGRES


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class GMSRecorder:
    """A GMS double that records the idempotency key of every callback request it gets."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)

    async def callback(self, request: web.Request) -> web.Response:
        self.got.append(str((await request.post())["_engagement_request_id"]))
        await asyncio.sleep(0.005)  # long enough for the other node to look at the queue
        return web.json_response({"_id": f"gms-{len(self.got)}"})


@pytest.fixture
async def gms(aiohttp_server: Any) -> tuple[GMSRecorder, str]:
    double = GMSRecorder()
    server: TestServer = await aiohttp_server(double.app)
    return double, str(server.make_url(""))


@contextlib.asynccontextmanager
async def outbox(
    database_url: str, gms_url: str, delivered: list[Delivery]
) -> AsyncIterator[CallbackOutbox]:
    async with aiohttp.ClientSession() as session:
        box = CallbackOutbox(database_url, GMSSettings(gms_url), lambda: session, delivered.append)
        await box.open()
        try:
            yield box
        finally:
            await box.close()


async def test_two_nodes_send_each_callback_once(database_url: str, gms: tuple[GMSRecorder, str]):
    double, gms_url = gms
    on_a: list[Delivery] = []
    on_b: list[Delivery] = []
    async with outbox(database_url, gms_url, on_a) as a, outbox(database_url, gms_url, on_b) as b:
        ids = [await a.enqueue(f"A{i}", f"V{i}", "cb", {"n": str(i)}) for i in range(30)]
        # Both nodes' loops, and more callers besides, go through the queue at once.
        await asyncio.gather(*(box.deliver_due() for box in (a, b, a, b, b)))
        await until(lambda: _settled(a, len(ids)))
    assert sorted(double.got) == sorted(ids)  # each once
    assert sorted(d.request_id for d in on_a + on_b) == sorted(ids)
    assert all(d.ok for d in on_a + on_b)


async def _settled(box: CallbackOutbox, n: int) -> bool:
    row = await box.db.fetchone("SELECT COUNT(*) FROM callbacks WHERE state = 'delivered'")
    return row is not None and row[0] == n


async def test_a_dead_nodes_claim_lapses_and_another_node_sends_it(
    database_url: str, gms: tuple[GMSRecorder, str]
):
    double, gms_url = gms
    db = await open_database(database_url)
    try:
        await migrate(db)
        now = int(time.time() * 1000)
        # A node took this request, then was killed before GMS answered: its claim holds 3 s.
        await db.execute(
            "INSERT INTO callbacks VALUES ('R1', 'A1', 'V1', 'cb', '{}', 'queued', 0, ?, NULL, "
            "NULL, ?, ?, 'dead-node', ?)",
            (now, now, now, now + 3000),
        )
    finally:
        await db.close()
    delivered: list[Delivery] = []
    async with outbox(database_url, gms_url, delivered) as survivor:
        await survivor.deliver_due()
        assert double.got == []  # not while the claim holds
        await until(lambda: _settled(survivor, 1))
        row = await survivor.get("R1")
    assert double.got == ["R1"]
    assert [(d.request_id, d.ok, d.gms_id) for d in delivered] == [("R1", True, "gms-1")]
    assert row is not None
    assert row["state"] == "delivered"


async def test_what_one_node_writes_another_reads(
    database_url: str, aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    shared = settings.model_copy(update={"database_url": database_url})
    one = await aiohttp_client(create_app(shared))
    other = await aiohttp_client(
        create_app(shared.model_copy(update={"data_dir": settings.data_dir / "other"}))
    )
    await post_events(one, factory.start())
    await post_events(one, factory.navigate("http://shop.example/pricing", "Pricing"))
    await one.app[HISTORY].flush()

    r = await other.get(url(other, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    visit = await r.json()
    r = await one.get(url(one, "visit", visitID=factory.visit_id), headers=AUTH)
    assert visit == {**await r.json(), "live": False}  # live on its node only
    assert [e["eventName"] for e in visit["events"]] == [
        "VisitStarted", "PageEntered", "PageExited", "PageEntered"
    ]  # fmt: skip


class Proxy:
    """A TCP proxy to PostgreSQL that a test can cut (every connection dropped, new ones
    refused) and restore, without touching the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.down = False
        self.links: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        if self.down:  # cut while this connection was being made
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self.links |= {writer, up_writer}
        pipes = [self._pipe(reader, up_writer), self._pipe(up_reader, writer)]
        for pipe in pipes:
            task = asyncio.create_task(pipe)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self.links.discard(writer)

    def cut(self) -> None:
        self.down = True
        for writer in list(self.links):
            writer.transport.abort()

    def restore(self) -> None:
        self.down = False

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    host, port = POSTGRES.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    p = Proxy(host, int(port))
    await p.start()
    try:
        yield p
    finally:
        await p.close()


async def test_postgresql_down_ingest_answers_and_writes_catch_up(
    database_url: str, proxy: Proxy, aiohttp_client: ClientFactory, settings: Settings,
    factory: Factory,
):  # fmt: skip
    assert proxy.server is not None
    port = proxy.server.sockets[0].getsockname()[1]
    server = POSTGRES.split("@", 1)[1].split("/", 1)[0]  # host:port
    through_proxy = database_url.replace(server, f"127.0.0.1:{port}", 1)
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"database_url": through_proxy}))
    )
    history = client.app[HISTORY]
    await post_events(client, factory.start())
    await history.flush()

    proxy.cut()
    await post_events(client, factory.navigate("http://shop.example/pricing", "Pricing"))
    await post_events(client, [factory.event("AddToCart", {"sku": "WH15"})])  # both answered 200

    async def write_failed() -> bool:
        return history.write_error is not None

    await until(write_failed)
    r = await client.get(url(client, "ready"))
    assert r.status == 503, await r.text()
    checks = (await r.json())["checks"]
    assert checks["history"].startswith("failed: ")
    assert checks["historyWrites"].startswith("failing: ")
    assert history.pending > 0, (history.write_error, history.set_aside)  # waiting, not lost

    proxy.restore()

    async def caught_up() -> bool:
        return history.pending == 0 and history.write_error is None

    await until(caught_up)
    r = await client.get(url(client, "ready"))
    assert r.status == 200, await r.text()
    direct = await asyncpg.connect(database_url)  # the server itself, not through the proxy
    try:
        rows = await direct.fetch(
            "SELECT event_name FROM events WHERE visit_id = $1 ORDER BY seq", factory.visit_id
        )
    finally:
        await direct.close()
    written = ["VisitStarted", "PageEntered", "PageExited", "PageEntered", "AddToCart"]
    assert [r[0] for r in rows] == written
    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert [e["eventName"] for e in (await r.json())["events"]] == written

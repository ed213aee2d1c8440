"""A callback one node took and could not send (GMS down, then the node gone) is sent by
another node, soon, and settles its attempt there, whether that node never saw the visit or
holds an old copy of the attempt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engagement.launchers.outbox import RETRY_MAX_S

from ..conftest import AUTH, SITE, Factory, post_events, url

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
INVITES = Path(__file__).resolve().parents[2] / "invites"
STRATEGIES = """
strategies:
  - name: call-me
    when: {event: WantCall}
    offer: {invite: callback.html, media: callback, params: {service: sales-cb}}
"""


class GMS:
    """GMS callback that records each request's idempotency key; 'down' answers 503."""

    def __init__(self) -> None:
        self.mode = "down"
        self.got: list[tuple[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)

    async def callback(self, request: web.Request) -> web.Response:
        self.got.append((self.mode, request.headers.get("Idempotency-Key", "")))
        if self.mode == "down":
            return web.json_response({"message": "unavailable"}, status=503)
        return web.json_response({"_id": "gms-1"})


@pytest.fixture
async def gms(aiohttp_server: Any) -> tuple[GMS, TestServer]:
    double = GMS()
    server: TestServer = await aiohttp_server(double.app)
    return double, server


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def attempt_on(node: Client, visit_id: str) -> dict[str, Any]:
    r = await node.get(url(node, "visit", visitID=visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    attempt: dict[str, Any] = (await r.json())["attempts"][-1]
    return attempt


@pytest.mark.parametrize("b_saw_it", [False, True], ids=["b-never-saw-it", "b-saw-it-offered"])
async def test_a_callback_left_by_a_gone_node_is_sent_and_settled_by_another(
    b_saw_it: bool,
    make_node: MakeNode,
    redis_url: str,
    tmp_path: Path,
    factory: Factory,
    gms: tuple[GMS, TestServer],
):
    double, server = gms
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.yaml").write_text(STRATEGIES)
    settings = {"invites_dir": INVITES, "gms_url": str(server.make_url(""))}
    a = await make_node("a", redis_url, **settings)
    b = await make_node("b", redis_url, **settings)  # started first: its outbox is idle
    await post_events(a, factory.start())
    await post_events(a, [factory.event("WantCall")])
    attempt = await attempt_on(a, factory.visit_id)
    if b_saw_it:  # b holds a copy of the attempt as it was before the visitor accepted
        await post_events(b, [factory.event("Look")])
    body = {
        "attemptID": attempt["attemptID"], "visitID": factory.visit_id,
        "pageID": factory.page_id, "_customer_number": "+33 1 23 45 67 89",
        "_desired_time": "now",
    }  # fmt: skip
    r = await a.post(url(a, "callbacks"), json=body, headers={"Origin": SITE})
    assert r.status == 202, await r.text()

    async def refused() -> bool:
        return bool(double.got)

    await until(refused, "node a tried GMS", 10)
    await a.close()  # node a is gone with the callback in its backoff
    double.mode = "up"

    async def sent() -> bool:
        return any(mode == "up" for mode, _key in double.got)

    # Well before the idle outbox's longest wait, node b looks at the queue and sends it.
    await until(sent, "node b sent the callback", RETRY_MAX_S / 4)

    async def completed() -> bool:
        return (await attempt_on(b, factory.visit_id))["state"] == "completed"

    await until(completed, "node b settled the attempt", 10)
    assert len({key for _mode, key in double.got}) == 1  # one request, tried again
    assert [mode for mode, _key in double.got].count("up") == 1
    assert (await attempt_on(b, factory.visit_id))["handoff"]["gmsID"] == "gms-1"

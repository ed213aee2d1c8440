"""The demo loop in real Chromium through a real nginx in front of two real `engagement serve`
nodes (one Redis database, one PostgreSQL schema), while nodes are killed with SIGKILL: the
dwell invitation still comes (timed by the node left, pushed to the page's stream after it
reconnected through nginx), the visitor accepts it, and the callback reaches GMS once, sent by
the other node when the node that took it is killed while GMS is down or while GMS keeps it
waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Playwright, Route, expect

from engagement.cluster.dues import SCHEDULE_KEY
from engagement.launchers.outbox import CLAIM_MARGIN_S, RETRY_MAX_S

from ..cluster.nodes import API_KEY, Balancer, Node, cluster, path, stop_all
from .conftest import CHROMIUM, CHROMIUM_ARGS, Visit, eventually

pytestmark = pytest.mark.browser

INVITES = Path(__file__).resolve().parents[2] / "invites"
DWELL_S = 4  # long enough to kill a node after the page loaded, short for a test
STRATEGIES = f"""
strategies:
  - name: pricing-callback
    when:
      all:
        - url: /pricing.html
        - time_on_page_s: {DWELL_S}
    offer: {{invite: callback.html, media: callback, params: {{service: sales-cb}}}}
"""
INVITATION = ".eng-invite-host .eng-invite"
OFFER = "[data-eng-content] #demo-offer"
CONFIRMED = "Thank you! We will call you back as soon as possible."
WAIT_S = 30  # a deadline for a state, not a timing assertion
GMS_TIMEOUT_S = 2


class RecordingGMS:
    """GMS callback, recording every request; 'down' answers 503, 'hanging' answers nothing
    (until the test ends)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.requests: list[dict[str, Any]] = []
        self.released = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)

    async def callback(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        key = request.headers.get("Idempotency-Key")
        self.requests.append({"path": request.path, "form": form, "key": key, "mode": self.mode})
        if self.mode == "hanging":
            await self.released.wait()
        if self.mode in ("down", "hanging"):
            return web.json_response({"message": "unavailable"}, status=503)
        return web.json_response({"_id": f"gms-{len(self.requests)}"})

    def taken(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["mode"] == "up"]


@pytest.fixture
async def gms(aiohttp_server: Any) -> AsyncIterator[tuple[RecordingGMS, TestServer]]:
    double = RecordingGMS()
    server: TestServer = await aiohttp_server(double.app)
    yield double, server
    double.released.set()


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_url: str, database_url: str, gms: tuple[RecordingGMS, TestServer]
) -> AsyncIterator[tuple[Balancer, list[Node]]]:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "cluster.yaml").write_text(STRATEGIES)
    balancer, nodes = await cluster(
        tmp_path, redis_url, database_url,
        invites_dir=str(INVITES), gms_url=str(gms[1].make_url("")), gms_timeout_s=GMS_TIMEOUT_S,
    )  # fmt: skip
    try:
        yield balancer, nodes
    finally:
        await stop_all(balancer, nodes)


@pytest.fixture
async def chromium(playwright: Playwright) -> AsyncIterator[Browser]:
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        await browser.close()


async def streams_on(http: aiohttp.ClientSession, node: Node) -> float:
    """The page streams open on ``node``, from its own /metrics."""
    async with http.get(node.url(path("metrics"))) as r:
        text = await r.text()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("engagement_open_streams ")
    )


async def visit_through(http: aiohttp.ClientSession, balancer: Balancer, visit_id: str) -> Visit:
    async with http.get(balancer.url(path("visit", visitID=visit_id))) as r:
        assert r.status == 200, await r.text()
        visit: Visit = await r.json()
        return visit


def offered(
    http: aiohttp.ClientSession, balancer: Balancer, visit_id: str
) -> Callable[[], Awaitable[Visit]]:
    async def check() -> Visit:
        visit = await visit_through(http, balancer, visit_id)
        assert [a["state"] for a in visit["attempts"]] == ["offered"], visit["attempts"]
        return visit

    return check


async def notify(http: aiohttp.ClientSession, balancer: Balancer, ids: dict[str, str]) -> None:
    """GWE's notify, through nginx: the demo's offer appended to the page."""
    offer = balancer.url(path("demo", filename="offer.html"))
    body = [
        {
            "page": ids["pageID"],
            "channel": "gpe.appendContent",
            "data": {"url": offer, "method": "GET", "container": "body"},
        }
    ]
    async with http.post(balancer.url(path("notify", visitID=ids["visitID"])), json=body) as r:
        assert r.status == 200, await r.text()


@pytest.mark.parametrize("gms_at_kill", ["down", "hanging"])
async def test_the_demo_loop_survives_kill_9_of_nodes_behind_nginx(
    gms_at_kill: str,
    two_nodes: tuple[Balancer, list[Node]],
    chromium: Browser,
    gms: tuple[RecordingGMS, TestServer],
    redis_url: str,
):
    balancer, nodes = two_nodes
    double = gms[0]
    schedule = aioredis.Redis.from_url(redis_url)
    http = aiohttp.ClientSession(headers={"X-API-Key": API_KEY})
    try:
        page = await (await chromium.new_context(locale="en-US")).new_page()
        await page.goto(balancer.url(path("demo", filename="pricing.html")))
        ids: dict[str, str] = await page.evaluate(
            "() => new Promise(resolve => window._gt.push(['getIDs', resolve]))"
        )

        # The page is live, its stream open on one node, its dwell in the shared schedule.
        async def stream_open() -> Node:
            held = [n for n in nodes if await streams_on(http, n) == 1]
            assert len(held) == 1, "the page's stream is not open yet"
            return held[0]

        holder = await eventually(stream_open, WAIT_S)

        async def dwell_scheduled() -> None:
            assert await schedule.zcard(SCHEDULE_KEY) == 1

        await eventually(dwell_scheduled, WAIT_S)
        visit = await visit_through(http, balancer, ids["visitID"])
        assert visit["attempts"] == []  # killed before the dwell ripens

        # 1. kill -9 the node holding the page's stream, before the dwell fires; the page's
        # reconnection is held back until the survivor has published to it twice.
        reconnections: list[str] = []
        release = asyncio.Event()

        async def hold(route: Route) -> None:
            reconnections.append(route.request.url)
            await release.wait()
            await route.continue_()

        await page.route(lambda u: urlsplit(u).path == path("stream"), hold)
        await holder.kill()
        survivor = next(n for n in nodes if n is not holder)

        async def reconnecting() -> None:
            assert reconnections, "the page has not tried to reconnect yet"

        await eventually(reconnecting, WAIT_S)
        # The dwell is timed by the survivor: it invites while the page has no stream ...
        visit = await eventually(offered(http, balancer, ids["visitID"]), WAIT_S)
        assert visit["attempts"][0]["strategy"] == "pricing-callback"
        assert await schedule.zcard(SCHEDULE_KEY) == 0  # claimed once
        # ... and an outside system notifies the page through nginx meanwhile.
        await notify(http, balancer, ids)
        release.set()

        # The page reconnects through nginx to the survivor and gets both, once each.
        dialog = page.locator(INVITATION)
        await expect(dialog).to_be_visible()
        await expect(page.locator(OFFER)).to_have_count(1)
        await expect(page.locator(INVITATION)).to_have_count(1)

        async def stream_moved() -> None:
            assert await streams_on(http, survivor) == 1

        await eventually(stream_moved, WAIT_S)
        await page.unroute_all()

        # 2. The killed node comes back; GMS is down (or hangs). The visitor accepts: a node
        # takes the callback, GMS refuses it (503; or the node waits for GMS's answer), and
        # that node is killed before it tries again (or while it waits).
        await holder.start()
        double.mode = gms_at_kill
        async with page.expect_response(f"**{path('callbacks')}") as answer:
            await dialog.locator("input[name=_customer_number]").fill("+33 1 23 45 67 89")
            await dialog.locator("button[type=submit]").click()
        assert (await answer.value).status == 202
        await expect(dialog).to_contain_text(CONFIRMED)
        [(_status, upstream)] = balancer.answered("POST", path("callbacks"))
        accepting = next(n for n in nodes if upstream.endswith(n.address))

        async def gms_asked() -> None:
            assert double.requests, "GMS got nothing yet"

        await eventually(gms_asked, WAIT_S)
        if gms_at_kill == "down":
            # Killed once the 503 is recorded and the claim given back, a second before the
            # next try; killed while it held the claim, the other node would wait for the
            # claim to lapse, as in "hanging".
            async def retry_scheduled() -> None:
                assert any("try 2 in 1 s" in n.log() for n in nodes), "no refusal recorded yet"

            await eventually(retry_scheduled, WAIT_S)
        await accepting.kill()
        double.mode = "up"

        # The other node sends it, once, with the same idempotency key.
        async def delivered() -> Visit:
            assert len(double.taken()) == 1, double.requests
            visit = await visit_through(http, balancer, ids["visitID"])
            assert [a["state"] for a in visit["attempts"]] == ["completed"], visit["attempts"]
            return visit

        if gms_at_kill == "down":  # well before an idle outbox looks again by itself
            visit = await eventually(delivered, RETRY_MAX_S / 2)
        else:  # once the dead node's claim lapsed: its GMS request and a margin
            visit = await eventually(delivered, GMS_TIMEOUT_S + CLAIM_MARGIN_S + WAIT_S)
        await notify(http, balancer, ids)  # the page's stream is (again) on the node left
        await expect(page.locator(OFFER)).to_have_count(2)
        assert {r["key"] for r in double.requests} == {
            double.requests[0]["form"]["_engagement_request_id"]
        }
        assert double.taken()[0]["form"]["_customer_number"] == "+33123456789"
        (attempt,) = visit["attempts"]
        assert attempt["strategy"] == "pricing-callback"
        states = [t["state"] for t in attempt["transitions"]]
        assert states[:3] == ["detected", "offered", "shown"]
        assert states[-1] == "completed"
        assert "accepted" in states  # written by the node killed since
        # The records every node wrote are read through nginx from the node left.
        assert ids["pageID"] in [p["pageID"] for p in visit["pages"]]
        assert attempt["handoff"]["gmsID"] == f"gms-{len(double.requests)}"
    finally:
        await http.close()
        await schedule.aclose()

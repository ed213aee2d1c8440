"""Pacing with two nodes behind a round-robin balancer: the availability feed and the answers
to invitations reach one node; both nodes pace from them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import LIFECYCLE, PACER
from engagement.attempts import Attempt
from engagement.availability import AvailabilityBoard, GroupState
from engagement.cluster.availability import SharedBoard
from engagement.cluster.redis import RedisLink, WriteBehind
from engagement.monitoring.ingest import now_ms
from engagement.pacing import orphans

from ..conftest import AUTH, SITE, Factory, post_events, url

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
INVITES = Path(__file__).resolve().parent.parent.parent / "invites"
STRATEGIES = """
strategies:
  - name: cart
    when: {event: AddToCart}
    availability: {group: sales}
    offer: {invite: chat.html, media: chat}
"""


@pytest.fixture
def nodes(make_node: MakeNode, redis_url: str, tmp_path: Path) -> Callable[[], Awaitable[Any]]:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "pacing.yaml").write_text(STRATEGIES)

    async def start() -> tuple[Client, Client]:
        a = await make_node("a", redis_url, invites_dir=INVITES)
        b = await make_node("b", redis_url, invites_dir=INVITES)
        return a, b

    return start


async def feed(node: Client, body: dict[str, Any]) -> None:
    r = await node.put(url(node, "availability-group", group="sales"), json=body, headers=AUTH)
    assert r.status == 200, await r.text()


async def qualify(node: Client) -> Factory:
    visitor = Factory()
    await post_events(node, [*visitor.start(), visitor.event("AddToCart")])
    return visitor


def attempt_of(node: Client, visitor: Factory) -> Attempt:
    [found] = [a for a in node.app[LIFECYCLE].by_id.values() if a.visit_id == visitor.visit_id]
    return found


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def test_a_feed_report_reaching_one_node_paces_the_other(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]],
):
    a, b = await nodes()
    await feed(a, {"agentsReady": 1})

    def reported() -> bool:
        return b.app[PACER].board.fresh("sales", now_ms()) is not None

    await until(reported, "node b knows the report node a received")
    r = await b.get(url(b, "availability"), headers=AUTH)
    assert (await r.json())["groups"]["sales"]["agentsReady"] == 1
    visitor = await qualify(b)
    assert attempt_of(b, visitor).state.value == "offered"


async def test_an_answer_through_the_other_node_frees_the_room(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]],
):
    a, b = await nodes()
    await feed(a, {"agentsReady": 1})
    first, second = await qualify(a), await qualify(a)
    invited = attempt_of(a, first)
    assert (invited.state.value, attempt_of(a, second).state.value) == ("offered", "paced")

    # The page declines through node b: node a, which invited, must count it answered.
    path = url(b, "disposition", {"visitID": first.visit_id, "code": "declined"},
               attemptID=invited.attempt_id)  # fmt: skip
    r = await b.get(path, headers={"Origin": SITE})
    assert r.status == 200, await r.text()

    await until(lambda: attempt_of(a, second).state.value == "offered", "the second invited")
    assert len(a.app[PACER].counters.pending("sales").invited) == 1  # the second's only


async def test_a_report_sent_earlier_never_replaces_a_later_one(redis_url: str):
    link, writes = RedisLink(redis_url), WriteBehind()
    try:
        here, there = AvailabilityBoard(), AvailabilityBoard()
        SharedBoard(link, writes, here)
        here.report("sales", GroupState(3, 0.0, 2_000))
        await writes.drain()
        here.report("sales", GroupState(1, 0.0, 1_000))  # sent before, written after
        await writes.drain()
        await SharedBoard(link, writes, there).pull()
        assert there.groups["sales"] == GroupState(3, 0.0, 2_000)
        there.take("sales", GroupState(0, 0.0, 1_500))  # older than the one it has
        assert there.groups["sales"].agents_ready == 3
    finally:
        await link.close()


async def test_an_invitation_a_stopped_node_followed_is_let_go_by_the_other(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], monkeypatch: pytest.MonkeyPatch
):
    """Only the node that invited follows the answer. When it is gone, the other node counts
    the invitation answered once its attempt has ended, instead of keeping the group's room
    taken for IN_FLIGHT_MAX_MS (an hour)."""
    monkeypatch.setattr(orphans, "CHECK_EVERY_MS", 100)
    monkeypatch.setattr(orphans, "GRACE_MS", 300)
    a, b = await nodes()
    await feed(a, {"agentsReady": 1})
    first = await qualify(a)
    invited = attempt_of(a, first)
    assert invited.state.value == "offered"
    await until(lambda: len(b.app[PACER].counters.pending("sales").invited) == 1, "b counts it")
    await a.close()  # node a stops: nobody follows its invitation now

    path = url(b, "disposition", {"visitID": first.visit_id, "code": "declined"},
               attemptID=invited.attempt_id)  # fmt: skip
    r = await b.get(path, headers={"Origin": SITE})
    assert r.status == 200, await r.text()

    await until(lambda: not b.app[PACER].counters.pending("sales").invited, "the room freed")
    later = await qualify(b)
    assert attempt_of(b, later).state.value == "offered"
    # What the decline taught counts once, cluster-wide.
    assert b.app[PACER].counters.acceptance("sales", "cart").observations == pytest.approx(1.0)


async def test_an_acceptance_a_stopped_node_followed_is_connected_by_the_other(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(orphans, "CHECK_EVERY_MS", 100)
    monkeypatch.setattr(orphans, "GRACE_MS", 300)
    a, b = await nodes()
    await feed(a, {"agentsReady": 1})
    first = await qualify(a)
    invited = attempt_of(a, first)

    async def report(node: Client, code: str) -> None:
        path = url(node, "disposition", {"visitID": first.visit_id, "code": code},
                   attemptID=invited.attempt_id)  # fmt: skip
        r = await node.get(path, headers={"Origin": SITE})
        assert r.status == 200, await r.text()

    await report(a, "accepted")
    await until(lambda: b.app[PACER].counters.pending("sales").accepted == 1, "b counts it")
    await a.close()  # node a stops while the visitor waits for the chat to open
    await report(b, "launched")
    await asyncio.sleep(0.01)
    await feed(b, {"agentsReady": 0, "agentsBusy": 1})  # the feed now counts that chat

    await until(lambda: b.app[PACER].counters.pending("sales").accepted == 0, "connected")

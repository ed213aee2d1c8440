"""Two nodes behind a round-robin balancer: one visit state, one live attempt, one dwell."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import LIFECYCLE, REGISTRY
from engagement.app import SHARED, WRITES
from engagement.attempts import Attempt
from engagement.cluster.dues import SCHEDULE_KEY

from ..conftest import AUTH, SITE, Factory, post_events, url
from ..redis_cluster import redis_client

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]
INVITES = Path(__file__).resolve().parent.parent.parent / "invites"
STRATEGIES = """
strategies:
  - name: two-carts
    when: {event: {name: AddToCart, count: 2}}
    offer: {invite: chat.html, media: chat}
  - name: help
    when: {event: {name: Help}}
    offer: {invite: chat.html, media: chat}
  - name: pricing-dwell
    when:
      all:
        - url: /pricing
        - time_on_page_s: 1
    offer: {invite: chat.html, media: chat}
"""


@pytest.fixture
def nodes(make_node: MakeNode, redis_url: str, tmp_path: Path) -> Callable[[], Awaitable[Any]]:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "cluster.yaml").write_text(STRATEGIES)

    async def start() -> tuple[Client, Client]:
        a = await make_node("a", redis_url, invites_dir=INVITES)
        b = await make_node("b", redis_url, invites_dir=INVITES)
        return a, b

    return start


def state_of(node: Client, visit_id: str) -> dict[str, Any]:
    visit = node.app[REGISTRY].get(visit_id)
    assert visit is not None, "the visit is not live on this node"
    return {
        "visit": (visit.global_visit_id, visit.started_at, visit.identity.value, visit.user_info),
        "pages": [(p.url, p.title, p.entered_at, p.exited_at) for p in visit.pages.values()],
        "current": visit.current_page_id,
        "viewed": visit.pages_viewed,
        "events": [(e.event_name, e.event_id, e.server_time) for e in visit.events],
    }


def attempts(*nodes: Client) -> list[Attempt]:
    """The attempts these nodes know, once each (a node may hold a copy of another's)."""
    found = {a.attempt_id: a for node in nodes for a in node.app[LIFECYCLE].by_id.values()}
    return list(found.values())


async def test_events_of_one_visit_on_two_nodes_make_one_visit_state(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start(f"{SITE}/", "Home"))
    await post_events(b, [factory.event("SignIn", {"firstName": "Ada"})])
    # Two tabs at once, each request to another node:
    sent = [[factory.event("Look", {"n": i})] for i in range(20)]
    answers = await asyncio.gather(*(post_events((a, b)[i % 2], e) for i, e in enumerate(sent)))
    await post_events(a, factory.navigate(f"{SITE}/pricing", "Pricing"))
    assert sum(r["accepted"] for r in answers) == 20

    for node in (a, b):  # each node catches up with what the other logged
        await node.app[SHARED].visit(factory.visit_id)

    assert state_of(a, factory.visit_id) == state_of(b, factory.visit_id)
    state = state_of(a, factory.visit_id)
    assert state["viewed"] == 2
    assert state["visit"][2:] == ("authenticated", {"firstName": "Ada"})
    assert sorted(e[1] for e in state["events"] if e[0] == "Look") == sorted(
        e[0]["eventID"] for e in sent
    )


async def test_a_repeated_event_is_a_duplicate_on_the_other_node_too(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    events = factory.start()

    first = await post_events(a, events)
    again = await post_events(b, events)  # the tracker retried through the other node

    assert (first, again) == ({"accepted": 2, "duplicates": 0}, {"accepted": 0, "duplicates": 2})


async def test_a_strategy_counts_events_that_reached_the_other_node(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(a, [factory.event("AddToCart")])

    await post_events(b, [factory.event("AddToCart")])  # b never saw the visit before

    [attempt] = attempts(a, b)
    assert (attempt.strategy, attempt.state.value) == ("two-carts", "offered")
    assert attempt in b.app[REGISTRY].get(factory.visit_id).attempts


async def test_one_live_attempt_per_visit_across_nodes(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(b, [factory.event("Look")])

    # Both nodes decide at once that the visitor needs help:
    await asyncio.gather(
        post_events(a, [factory.event("Help")]), post_events(b, [factory.event("Help")])
    )

    [attempt] = attempts(a, b)
    assert attempt.strategy == "help"
    [held] = [
        visit.held_back
        for node in (a, b)
        if (visit := node.app[REGISTRY].get(factory.visit_id)).held_back is not None
    ]
    assert held[-1][1:] == ("help", "strict mode: an engagement is live")


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def test_a_dwell_fires_once_on_the_node_left_when_the_other_stops(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory, redis_url: str
):
    a, b = await nodes()
    schedule = redis_client(redis_url)
    try:
        await post_events(a, factory.start())
        await post_events(a, factory.navigate(f"{SITE}/pricing", "Pricing"))

        async def scheduled() -> bool:
            return await schedule.zcard(SCHEDULE_KEY) == 1

        await until(scheduled, "node a put the dwell's due time in the shared schedule")
        await a.close()  # node a, which saw every event, goes away before the second passes

        async def invited() -> bool:
            return bool(attempts(b))

        await until(invited, "node b invited the visitor")
        [attempt] = attempts(b)
        assert (attempt.strategy, attempt.state.value) == ("pricing-dwell", "offered")
        assert attempts(a) == []
        assert await schedule.zcard(SCHEDULE_KEY) == 0  # claimed: nobody else will fire it
    finally:
        await schedule.aclose()


async def test_a_dwell_fires_once_with_both_nodes_alive(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(b, factory.navigate(f"{SITE}/pricing", "Pricing"))

    async def invited() -> bool:
        return bool(attempts(a, b))

    await until(invited, "a node invited the visitor")
    # Both nodes claim ripe dues every tick; a few more ticks start nothing else.
    await asyncio.sleep(1)
    [attempt] = attempts(a, b)
    assert attempt.strategy == "pricing-dwell"


async def report(node: Client, attempt: Attempt, code: str) -> dict[str, Any]:
    path = url(node, "disposition", {"visitID": attempt.visit_id, "code": code},
               attemptID=attempt.attempt_id)  # fmt: skip
    r = await node.get(path, headers={"Origin": SITE})
    assert r.status == 200, await r.text()
    return dict(await r.json())


async def test_the_page_answers_an_invitation_through_either_node(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(a, [factory.event("Help")])
    [attempt] = attempts(a)

    shown = await report(b, attempt, "shown")  # b never saw the visit: it catches up
    declined = await report(a, attempt, "declined")  # a's copy follows what b did

    assert (shown["state"], declined["state"]) == ("shown", "declined")
    for node in (a, b):
        await node.app[LIFECYCLE].catch_up(factory.visit_id)
        copy = node.app[LIFECYCLE].by_id[attempt.attempt_id]
        assert [s.value for s, _, _ in copy.transitions] == [
            "detected",
            "offered",
            "shown",
            "declined",
        ]


async def test_an_invitation_of_a_stopped_node_times_out_on_the_other(
    make_node: MakeNode, redis_url: str, tmp_path: Path, factory: Factory
):
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "cluster.yaml").write_text(STRATEGIES)
    a = await make_node("a", redis_url, invites_dir=INVITES, engagement_expiration_s=1)
    b = await make_node("b", redis_url, invites_dir=INVITES, engagement_expiration_s=1)
    await post_events(a, factory.start())
    await post_events(a, [factory.event("Help")])
    [attempt] = attempts(a)
    await a.close()  # the node that offered it goes away

    async def timed_out() -> bool:
        copy = b.app[LIFECYCLE].by_id.get(attempt.attempt_id)
        return copy is not None and copy.state.value == "timed_out"

    await until(timed_out, "node b ended the unanswered invitation")
    copy = b.app[LIFECYCLE].by_id[attempt.attempt_id]
    assert copy.transitions[-1][2] == "no answer while offered"


async def test_an_outside_engage_through_two_nodes_at_once_starts_one_attempt(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(b, [factory.event("Look")])
    body = {"ixnProfile": {"visitID": factory.visit_id, "invite": "chat.html", "media": "chat"}}

    answers = await asyncio.gather(
        *(node.post(url(node, "engage"), json=body, headers=AUTH) for node in (a, b))
    )

    assert sorted(r.status for r in answers) == [200, 409]
    assert len(attempts(a, b)) == 1


async def test_a_batch_of_several_visits_logs_each_of_them(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    other = Factory()

    answer = await post_events(a, factory.start() + other.start())

    assert answer == {"accepted": 4, "duplicates": 0}
    for f in (factory, other):
        visit = await b.app[SHARED].visit(f.visit_id)
        assert visit is not None
        assert [p.url for p in visit.pages.values()] == [f.url]


async def test_a_decline_on_one_node_cools_the_visitor_down_on_the_other(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory
):
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(a, [factory.event("Help")])
    [declined] = attempts(a)
    await report(a, declined, "declined")
    await a.app[WRITES].drain()
    later = Factory()  # the same visitor's next visit, which node a never sees
    later.global_visit_id = factory.global_visit_id

    await post_events(b, later.start())
    await post_events(b, [later.event("Help")])

    assert [x.attempt_id for x in attempts(b)] == [declined.attempt_id]  # no new one
    visit = b.app[REGISTRY].get(later.visit_id)
    assert visit.held_back is not None
    assert visit.held_back[-1][1:] == ("help", "limit cooldown_after_decline")


EXPERIMENT = """
strategies:
  - name: big-cart
    when: {event: BigCart}
    offer: {invite: chat.html, media: chat}
    goal: {event: OrderPlaced, within_h: 24}
"""


async def test_a_goal_reached_through_the_other_node_converts_once(
    nodes: Callable[[], Awaitable[tuple[Client, Client]]], factory: Factory, tmp_path: Path
):
    (tmp_path / "strategies" / "experiment.yaml").write_text(EXPERIMENT)
    a, b = await nodes()
    await post_events(a, factory.start())
    await post_events(a, [factory.event("BigCart")])
    await a.app[WRITES].drain()

    await post_events(b, [factory.event("OrderPlaced")])  # the order goes through node b

    converted = [node.app[LIFECYCLE].goals.converted_total for node in (a, b)]
    assert converted == [0, 1]

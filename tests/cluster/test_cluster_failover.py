"""Nodes on a Redis Cluster whose shards have replicas: a shard's primary hands over to its
replica (``CLUSTER FAILOVER``) or dies (kill -9, its replica promoted by the others), and the
nodes keep serving the visits of that shard: events logged on the new primary, one visit
state on both nodes, a notification through sharded pub/sub to a page held on the other
node, ``/ready`` back to ok."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engagement.cluster.redis import visit_key
from engagement.cluster.shards import slot_of

from ..conftest import Factory, post_events
from ..redis_cluster import LocalCluster, running_cluster
from .sentinels import until
from .test_push import message, notify, open_page
from .test_sentinel import MakeNode, both_take_events, notified, until_ready

NODE = {"push_heartbeat_s": 0.3}
NODE_TIMEOUT_MS = 1000  # a dead primary is counted failed after 1 s (Redis's default: 15 s)


@pytest.fixture
def replicated() -> Iterator[LocalCluster]:
    """Three primaries with one replica each, for this test alone (a failover changes
    which server is primary)."""
    with running_cluster(replicas=1, node_timeout_ms=NODE_TIMEOUT_MS) as cluster:
        yield cluster


@pytest.mark.parametrize("how", ["CLUSTER FAILOVER", "kill -9 of the primary"])
async def test_the_nodes_follow_a_shard_failover(
    replicated: LocalCluster, make_node: MakeNode, factory: Factory, how: str
):
    a = await make_node("a", replicated.url, **NODE)
    b = await make_node("b", replicated.url, **NODE)
    posted: list[dict[str, Any]] = factory.start()
    await post_events(a, posted)
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    assert message(await page.next()) == ("offer", {"n": 1})
    slot = slot_of(visit_key(factory.visit_id, "log"))
    old = replicated.primary_of(slot)
    new = replicated.replica_of(old)

    # Replication is asynchronous: what a primary took in its last instant and its replica
    # had not received dies with it (docs/cluster.md). Here the replica has it all.
    async def synced() -> bool:
        return replicated.synced(old, new)

    await until(synced, f"the replica on {new} has what {old} wrote")
    if how == "CLUSTER FAILOVER":
        replicated.node(new).execute_command("CLUSTER", "FAILOVER")
    else:
        replicated.kill(old)

    async def promoted() -> bool:
        return replicated.primary_of(slot) == new

    await until(promoted, f"the replica on {new} serves the visit's slot")

    logged = await both_take_events(a, b, factory, new)
    assert {e["eventID"] for e in posted} <= logged

    await notified(a, factory, 2)  # the page's channel, subscribed again on the new primary
    assert message(await page.next(timeout_s=30)) == ("offer", {"n": 2})
    for node in (a, b):
        assert (await until_ready(node))["checks"]["redis"] == "ok"

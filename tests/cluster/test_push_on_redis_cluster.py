"""Push across two nodes on a real Redis Cluster (tests/redis_cluster.py): the tests of
test_push.py that need no single server, run again with ``redis_url`` set to the cluster's
``redis+cluster://`` URL. Publications are sharded (SPUBLISH on the visit's shard), and each
node subscribes to a visit's channel on that shard (shard_pubsub.py)."""

from __future__ import annotations

import pytest

from engagement.api.state import HUB
from engagement.cluster.push import channel_of
from engagement.cluster.shards import slot_of

from ..conftest import Factory, post_events
from ..redis_cluster import LocalCluster
from .test_push import (  # noqa: F401  (collected here, on the cluster)
    Client,
    message,
    nodes,
    notify,
    open_page,
    test_a_node_that_never_saw_the_visit_notifies_its_page,
    test_a_notify_on_one_node_reaches_the_page_on_the_other,
    test_a_notify_to_a_page_entered_on_the_other_node_catches_up_first,
    test_a_notify_to_a_visit_held_here_costs_only_its_publication,
    test_a_page_back_on_another_node_gets_what_it_missed_once,
    test_a_visitor_s_export_and_erasure_reach_the_redis_buffer,
    test_publications_racing_the_replay_come_once_each,
)


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    """Every node of these tests on the Redis Cluster."""
    return cluster_url


async def test_a_page_keeps_hearing_its_visit_when_the_visit_s_slot_moves(
    nodes: tuple[Client, Client],  # noqa: F811  (the fixture imported above)
    factory: Factory,
    redis_cluster: LocalCluster,
):
    a, b = nodes
    await post_events(a, factory.start())
    page = await open_page(b, factory)
    await notify(a, factory, 1)
    assert message(await page.next()) == ("offer", {"n": 1})
    slot = slot_of(channel_of(factory.visit_id))
    source = redis_cluster.primary_of(slot)
    target = next(p for p in redis_cluster.ports if p != source)

    redis_cluster.move_slot(slot, target)  # the buffer moves; Redis drops the subscription
    try:
        await notify(a, factory, 2)  # published on the new shard (MOVED followed)

        assert message(await page.next()) == ("offer", {"n": 2})
        await page.quiet()  # once: live or read from the buffer, not both
        assert b.app[HUB]._pubsub.where[channel_of(factory.visit_id)] == f"127.0.0.1:{target}"
    finally:
        redis_cluster.move_slot(slot, source)

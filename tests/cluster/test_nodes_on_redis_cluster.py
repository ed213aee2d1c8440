"""Two nodes on a real Redis Cluster (tests/redis_cluster.py: three primaries): the two-node
tests of test_two_nodes.py and test_privacy_cluster.py, and the erasure log's trimming, run
again with ``redis_url`` set to the cluster's ``redis+cluster://`` URL. A visit's keys, the
schedules, the limits and the erasure log then live on different shards."""

from __future__ import annotations

import pytest

from engagement.api.state import REDIS
from engagement.cluster.redis import visit_key
from engagement.cluster.shards import ClusterWire, slot_of

from ..conftest import Factory, post_events
from .test_erasure_log import (  # noqa: F401  (collected here, on the cluster)
    test_the_erasure_log_is_trimmed_by_age,
)
from .test_privacy_cluster import (  # noqa: F401  (collected here, on the cluster)
    test_a_link_token_issued_on_one_node_is_redeemed_on_the_other_once,
    test_erasing_a_full_visitor_on_the_other_node_leaves_no_key_value_row_or_memory,
    test_erasure_on_one_node_reaches_redis_postgresql_and_the_other_node,
)
from .test_two_nodes import (  # noqa: F401  (collected here, on the cluster)
    MakeNode,
    nodes,
    test_a_batch_of_several_visits_logs_each_of_them,
    test_a_decline_on_one_node_cools_the_visitor_down_on_the_other,
    test_a_dwell_fires_once_on_the_node_left_when_the_other_stops,
    test_a_dwell_fires_once_with_both_nodes_alive,
    test_a_goal_reached_through_the_other_node_converts_once,
    test_a_repeated_event_is_a_duplicate_on_the_other_node_too,
    test_a_strategy_counts_events_that_reached_the_other_node,
    test_an_invitation_of_a_stopped_node_times_out_on_the_other,
    test_an_outside_engage_through_two_nodes_at_once_starts_one_attempt,
    test_events_of_one_visit_on_two_nodes_make_one_visit_state,
    test_one_live_attempt_per_visit_across_nodes,
    test_the_page_answers_an_invitation_through_either_node,
)


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    """Every node of these tests on the Redis Cluster."""
    return cluster_url


async def test_a_node_on_the_cluster_url_routes_by_slot(make_node: MakeNode, redis_url: str):
    a = await make_node("a", redis_url)
    wire = a.app[REDIS].wire
    assert isinstance(wire, ClusterWire)
    await post_events(a, Factory().start())  # loads the slot map
    assert len(set(wire.slots)) == 3  # the map of three primaries

    # One visit on each primary (random visit IDs could all land on two of them).
    visits: dict[str, Factory] = {}
    while len(visits) < 3:
        visit = Factory()
        visits.setdefault(wire.slots[slot_of(visit_key(visit.visit_id, "log"))], visit)
    for visit in visits.values():
        await post_events(a, visit.start())

    assert len(wire._wires) == 3  # one connection per primary, each used

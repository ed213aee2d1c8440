"""Push across two nodes on a real Redis Cluster (tests/redis_cluster.py): the tests of
test_push.py that need no single server, run again with ``redis_url`` set to the cluster's
``redis+cluster://`` URL. Publications are classic PUBLISH, which the cluster carries to every
node: a node's pub/sub connection to any node hears them."""

from __future__ import annotations

import pytest

from .test_push import (  # noqa: F401  (collected here, on the cluster)
    nodes,
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

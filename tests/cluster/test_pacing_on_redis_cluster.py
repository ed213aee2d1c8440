"""Pacing across two nodes on a real Redis Cluster (tests/redis_cluster.py): the tests of
test_pacing_nodes.py run again with ``redis_url`` set to the cluster's ``redis+cluster://``
URL (the availability reports, ``{availability}``, and each group's counters on their own
slots)."""

from __future__ import annotations

import pytest

from .test_pacing_nodes import (  # noqa: F401  (collected here, on the cluster)
    nodes,
    test_a_feed_report_reaching_one_node_paces_the_other,
    test_a_report_sent_earlier_never_replaces_a_later_one,
    test_an_answer_through_the_other_node_frees_the_room,
)


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    """Every node of these tests on the Redis Cluster."""
    return cluster_url

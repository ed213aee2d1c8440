"""Limits, lock-outs and pacing counters on a real Redis Cluster (tests/redis_cluster.py): the
tests of test_redis_basics.py and test_pacing_shared.py that need no single server, run again
with ``redis_url`` set to the cluster's ``redis+cluster://`` URL. Their keys (``{limits}``,
``{pacing:<group>}``) each sit in one slot, on whichever shard holds it."""

from __future__ import annotations

import pytest

from .test_pacing_shared import (  # noqa: F401  (collected here, on the cluster)
    nodes,
    test_an_invitation_on_one_node_counts_on_the_other,
    test_answers_and_connections_on_one_node_free_room_on_the_other,
    test_invitations_a_dead_node_left_in_flight_leave_the_count,
)
from .test_redis_basics import (  # noqa: F401  (collected here, on the cluster)
    test_a_right_key_is_checked_and_resets_the_failures_in_one_round_trip,
    test_metrics_say_what_redis_costs,
    test_rate_limits_count_requests_of_every_node,
    test_wrong_keys_on_one_node_lock_the_address_out_on_the_other,
)


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    """Every node of these tests on the Redis Cluster."""
    return cluster_url

"""The capacity formula of bench/cluster.py (bench/capacity.py): arithmetic only, no timing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from capacity import (
    Costs,
    Prediction,
    Projection,
    error_pct,
    nodes_applying,
    predict_here,
    project,
)

COSTS = Costs(
    node_cpu_s=200e-6,
    redis_cpu_s=20e-6,
    pg_cpu_s=30e-6,
    other_cpu_s=50e-6,
    redis_commands=12.0,
    redis_bytes_in=700.0,
    redis_bytes_out=300.0,
    pg_rows=1.5,
    pg_commits=0.01,
)


def test_projection_of_100k_visitors_at_one_event_per_10_s() -> None:
    p = project(COSTS, 100_000, affinity=True)

    # 10,000 events/s x 200 us = 2.0 cores of nodes, at 70 % -> 3 nodes; Redis 0.2 core.
    assert p == Projection(
        visitors=100_000,
        events_per_s=10_000.0,
        nodes=3,
        nodes_applying=1.0,
        node_cpu_s=pytest.approx(200e-6),
        node_cores=pytest.approx(2.0),
        redis_cores=pytest.approx(0.2),
        redis_shards=1,
        redis_commands_per_s=pytest.approx(120_000.0),
        redis_mbit_in=pytest.approx(56.0),
        redis_mbit_out=pytest.approx(24.0),
        pg_cores=pytest.approx(0.3),
        pg_rows_per_s=pytest.approx(15_000.0),
        pg_commits_per_s=pytest.approx(100.0),
    )


@pytest.mark.parametrize(
    ("nodes", "visit_events", "expected"),
    [(1, 20, 1.0), (4, 1, 1.0), (2, 2, 1.25), (4, 2, 1.375), (3, 3, (19 / 9 + 5 / 3 + 1) / 3)],
)
def test_nodes_applying_an_event(nodes: int, visit_events: int, expected: float) -> None:
    # (2, 2): the first event is applied by its node and, half the time, by the other node
    # that takes the second event: 1.5; the last event by its node only: 1. Mean 1.25.
    assert nodes_applying(nodes, visit_events) == pytest.approx(expected)


def test_long_visits_on_two_nodes_are_applied_by_both() -> None:
    assert nodes_applying(2, 1000) == pytest.approx(2.0, abs=0.002)


def test_without_affinity_more_nodes_make_each_event_dearer() -> None:
    costs = Costs(200e-6, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0, 0.0, apply_cpu_s=100e-6)

    p = project(costs, 100_000, visit_events=2)

    # 1 node's cost asks for 3; at 3 nodes an event costs 233 us -> 4; at 4, 237.5 us -> 4.
    # Each of the 1.375 nodes applying an event reads its 100 B back from Redis: 11 Mbit/s.
    assert (p.nodes, p.nodes_applying, p.node_cpu_s, p.node_cores, p.redis_mbit_out) == (
        4,
        pytest.approx(1.375),
        pytest.approx(237.5e-6),
        pytest.approx(2.375),
        pytest.approx(11.0),
    )


def test_a_million_visitors_need_redis_shards_when_one_redis_core_is_not_enough() -> None:
    p = project(COSTS, 1_000_000, utilization=0.5, affinity=True)

    # 100,000 events/s: nodes 20 cores / 0.5 = 40; Redis 2 cores / 0.5 = 4 shards.
    assert (p.events_per_s, p.nodes, p.redis_shards) == (100_000.0, 40, 4)


def test_no_visitors_still_one_node_and_one_redis() -> None:
    p = project(COSTS, 0)

    assert (p.nodes, p.redis_shards, p.pg_rows_per_s) == (1, 1, 0.0)


def test_prediction_for_two_nodes_counts_their_catching_up() -> None:
    costs = Costs(200e-6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, apply_cpu_s=50e-6)

    # Long visits: each event applied by both nodes, 250 us each; 2 nodes on 4 cores.
    assert predict_here(costs, 2, 4, visit_events=10_000) == Prediction(
        2, 4, pytest.approx(8_000.0, rel=1e-3), "nodes"
    )


def test_prediction_here_is_the_nodes_limit_when_the_machine_has_room() -> None:
    # 1 node: 1 / 200 us = 5,000/s; the machine: 2 / 300 us = 6,667/s.
    assert predict_here(COSTS, 1, 2) == Prediction(1, 2, pytest.approx(5_000.0), "nodes")


def test_prediction_here_is_the_machines_limit_when_nodes_compete_for_its_cores() -> None:
    # 2 nodes could do 10,000/s, but 2 cores for 300 us per event give 6,667/s.
    assert predict_here(COSTS, 2, 2) == Prediction(
        2, 2, pytest.approx(6_666.67, rel=1e-4), "machine"
    )


def test_more_nodes_than_cores_do_not_add_capacity() -> None:
    cheap = Costs(100e-6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    assert predict_here(cheap, 4, 2) == Prediction(4, 2, pytest.approx(20_000.0), "machine")


def test_error_is_signed_in_percent_of_the_measured() -> None:
    assert (error_pct(110.0, 100.0), error_pct(90.0, 100.0)) == (
        pytest.approx(10.0),
        pytest.approx(-10.0),
    )


@pytest.mark.parametrize(
    "kwargs", [{"visitors": -1}, {"seconds_per_event": 0.0}, {"utilization": 0.0}]
)
def test_nonsense_inputs_are_refused(kwargs: dict[str, float]) -> None:
    args = {"visitors": 10, **kwargs}
    visitors = int(args.pop("visitors"))

    with pytest.raises(ValueError, match="visitors >= 0"):
        project(COSTS, visitors, **args)

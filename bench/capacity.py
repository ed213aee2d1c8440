"""The capacity formula of bench/cluster.py: pure arithmetic on per-event costs measured there.

A load of V concurrent visitors, each sending one event every ``seconds_per_event``, is
E = V / seconds_per_event events/s. Every resource r that an event touches costs ``d_r``
CPU-seconds per event (measured: the node process, the Redis server, the PostgreSQL backends),
and a resource saturates when E x d_r reaches the cores it has. So:

- nodes        = ceil(E x d_node(n) / u)         (a node runs one event loop: one core);
                 d_node(n) = d_node + (f(n, L) - 1) x d_apply: with no affinity an event is
                 applied by f nodes (its own, and each that later takes an event of the
                 visit and catches up), see ``nodes_applying``; n is iterated to a fixed point
- Redis        = E x d_redis cores; Redis runs commands on one thread, so
                 shards = ceil(E x d_redis / u)  (1 = one Redis is enough)
- PostgreSQL   = E x d_pg cores, E x rows/event rows/s, E x commits/event commits/s
- traffic      = E x commands/event, E x bytes/event to Redis, and from it E x bytes/event x
                 the nodes that apply each event

with ``u`` the utilization a resource is planned at (0.7: headroom for bursts and garbage
collection pauses). On one machine of K cores shared by everything (this 2-core box: the nodes,
Redis, PostgreSQL, the load generator and the kernel's loopback work), n nodes serve

    X(n) = min(n / d_node(n), K / (d_node(n) + d_redis + d_pg + d_other))

i.e. the smaller of what the nodes can do and what the machine's cores can do for the whole
per-event cost. ``bench/cluster.py`` measures the d's in a calibration run, predicts X(1) and
X(2) with this function, and prints them beside the measured figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UTILIZATION = 0.7  # plan each resource at 70 % of its cores: bursts, GC pauses
SECONDS_PER_EVENT = 10.0  # the load: one event per visitor every 10 s
VISIT_EVENTS = 20  # events of a visit: about 3 minutes at one event per 10 s


@dataclass(frozen=True)
class Costs:
    """Per-event costs measured in one run (seconds are CPU-seconds per event)."""

    node_cpu_s: float  # one engagement serve process
    redis_cpu_s: float  # the Redis server process
    pg_cpu_s: float  # the PostgreSQL backends of the engine's connections
    other_cpu_s: float  # this machine only: the load generator and loopback softirq
    redis_commands: float  # commands Redis ran (a script's inner commands included)
    redis_bytes_in: float  # bytes Redis received
    redis_bytes_out: float  # bytes Redis sent
    pg_rows: float  # rows inserted or updated
    pg_commits: float  # transactions committed
    apply_cpu_s: float = 0.0  # a node applying one entry another node logged (catching up)

    def node_cost(self, nodes: int, visit_events: float) -> float:
        """A node's CPU per event when ``nodes`` nodes share the traffic without affinity:
        its own work, plus applying each event on the other nodes that later see the visit."""
        return self.node_cpu_s + (nodes_applying(nodes, visit_events) - 1) * self.apply_cpu_s

    def total_cpu_s(self, nodes: int = 1, visit_events: float = 1) -> float:
        return (
            self.node_cost(nodes, visit_events)
            + self.redis_cpu_s
            + self.pg_cpu_s
            + self.other_cpu_s
        )


def nodes_applying(nodes: int, visit_events: float) -> float:
    """How many nodes apply one event, on average over a visit of ``visit_events`` events,
    when a balancer spreads requests over ``nodes`` nodes with no affinity: the node that
    logged it, plus each other node that takes a later event of the visit (it catches up with
    the visit's log then). For the i-th of L events, each of the other nodes takes one of the
    L - i later events with probability 1 - (1 - 1/n)^(L - i)."""
    if nodes < 1 or visit_events < 1:
        raise ValueError("nodes >= 1 and visit_events >= 1")
    length = round(visit_events)
    miss = 1 - 1 / nodes
    total = sum(1 + (nodes - 1) * (1 - miss ** (length - i)) for i in range(1, length + 1))
    return total / length


@dataclass(frozen=True)
class Projection:
    visitors: int
    events_per_s: float
    nodes: int
    nodes_applying: float  # nodes that apply each event (1 with affinity by visit)
    node_cpu_s: float  # per event, catching up included
    node_cores: float
    redis_cores: float
    redis_shards: int
    redis_commands_per_s: float
    redis_mbit_in: float  # megabits per second into Redis
    redis_mbit_out: float
    pg_cores: float
    pg_rows_per_s: float
    pg_commits_per_s: float


def project(
    costs: Costs,
    visitors: int,
    *,
    seconds_per_event: float = SECONDS_PER_EVENT,
    utilization: float = UTILIZATION,
    visit_events: float = VISIT_EVENTS,
    affinity: bool = False,
) -> Projection:
    """What ``visitors`` concurrent visitors need (the load generator's cost left out).

    Without ``affinity`` (round-robin, as the cluster allows) more nodes make each event
    dearer (more nodes catch up with it), so the node count is found by iterating to the
    smallest n that carries the load at its own cost per event. With ``affinity`` (a balancer
    hashing on the visit) each event is applied once."""
    if visitors < 0 or seconds_per_event <= 0 or not 0 < utilization <= 1:
        raise ValueError("visitors >= 0, seconds_per_event > 0, 0 < utilization <= 1")
    e = visitors / seconds_per_event
    length = 1 if affinity else visit_events
    nodes = 1
    while (needed := math.ceil(e * costs.node_cost(nodes, length) / utilization)) > nodes:
        nodes = needed
    node_cpu_s = costs.node_cost(nodes, length)
    redis_cores = e * costs.redis_cpu_s
    return Projection(
        visitors=visitors,
        events_per_s=e,
        nodes=nodes,
        nodes_applying=nodes_applying(nodes, length),
        node_cpu_s=node_cpu_s,
        node_cores=e * node_cpu_s,
        redis_cores=redis_cores,
        redis_shards=max(1, math.ceil(redis_cores / utilization)),
        redis_commands_per_s=e * costs.redis_commands,
        redis_mbit_in=e * costs.redis_bytes_in * 8 / 1e6,
        # each node that applies an event reads it back from the log
        redis_mbit_out=e * costs.redis_bytes_out * nodes_applying(nodes, length) * 8 / 1e6,
        pg_cores=e * costs.pg_cpu_s,
        pg_rows_per_s=e * costs.pg_rows,
        pg_commits_per_s=e * costs.pg_commits,
    )


@dataclass(frozen=True)
class Prediction:
    nodes: int
    cores: float
    events_per_s: float
    bound: str  # "nodes" or "machine": which limit decides


def predict_here(
    costs: Costs, nodes: int, cores: float, visit_events: float = VISIT_EVENTS
) -> Prediction:
    """Events/s that ``nodes`` nodes reach on a machine of ``cores`` cores which also runs
    Redis, PostgreSQL and the load generator: the smaller of the nodes' own limit (one core
    each) and the machine's (every core for the whole per-event cost)."""
    if nodes < 1 or cores <= 0:
        raise ValueError("nodes >= 1 and cores > 0")
    node_bound = nodes / costs.node_cost(nodes, visit_events)
    machine_bound = cores / costs.total_cpu_s(nodes, visit_events)
    if node_bound <= machine_bound:
        return Prediction(nodes, cores, node_bound, "nodes")
    return Prediction(nodes, cores, machine_bound, "machine")


def error_pct(predicted: float, measured: float) -> float:
    """Signed error of a prediction, in % of the measured figure."""
    return 100 * (predicted - measured) / measured

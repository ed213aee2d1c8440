"""The documented nginx in front of two real `engagement serve` nodes (one Redis database, one
PostgreSQL schema), checked as an operator would: the configuration passes `nginx -t`, requests
reach both nodes round-robin, /ready and /metrics tell the cluster's health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from ..conftest import SITE, Factory
from .nodes import (
    API_KEY,
    Balancer,
    Node,
    cluster,
    need_nginx,
    nginx_conf,
    nginx_test,
    path,
    promtool_check,
    stop_all,
)


def samples(text: str) -> dict[str, float]:
    """The metrics page's samples without labels, by name."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            found[name] = float(value)
    return found


@pytest.fixture
async def two_nodes(
    tmp_path: Path, redis_url: str, database_url: str
) -> AsyncIterator[tuple[Balancer, list[Node]]]:
    balancer, nodes = await cluster(tmp_path, redis_url, database_url)
    try:
        yield balancer, nodes
    finally:
        await stop_all(balancer, nodes)


def test_the_documented_configuration_passes_nginx_t(tmp_path: Path):
    need_nginx()
    conf = nginx_conf(tmp_path, [unused_port(), unused_port()], unused_port())

    checked = nginx_test(tmp_path, conf)

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    text = conf.read_text()
    assert "proxy_buffering off;" in text
    assert "upstream engagement" in text


async def test_requests_reach_both_nodes_and_ready_and_metrics_tell_the_cluster(
    two_nodes: tuple[Balancer, list[Node]], factory: Factory
):
    balancer, nodes = two_nodes
    headers = {"Origin": SITE, "X-API-Key": API_KEY}
    async with aiohttp.ClientSession() as http:
        # A visit's events through nginx: round-robin sends them to both nodes.
        batches = [factory.start(f"{SITE}/", "Home")]
        batches += [[factory.event("Look", {"n": i})] for i in range(6)]
        for events in batches:
            async with http.post(
                balancer.url(path("events")), json={"events": events}, headers=headers
            ) as r:
                assert r.status == 200, await r.text()
        served = {up for status, up in balancer.answered("POST", path("events"))}
        assert served == {n.address for n in nodes}

        # /ready through nginx answers for whichever node it reaches: both are ready.
        for _ in nodes:
            async with http.get(balancer.url(path("ready"))) as r:
                body = await r.json()
                assert (r.status, body["checks"]["redis"], body["checks"]["history"]) == (
                    200, "ok", "ok",
                ), body  # fmt: skip
        # nginx logs a request after its answer went out: wait for both lines.
        for _ in range(100):
            if len(ready := balancer.answered("GET", path("ready"))) == len(nodes):
                break
            await asyncio.sleep(0.05)
        assert len({up for _s, up in ready}) == 2, ready

        # A page's stream on node a; a notify posted to node b reaches it through Redis.
        stream = path("stream")
        query = {"visitID": factory.visit_id, "pageID": factory.page_id}
        async with http.get(nodes[0].url(stream), params=query, headers=headers) as sse:
            assert sse.status == 200
            notify = nodes[1].url(path("notify", visitID=factory.visit_id))
            # The first may reach the page from the visit's buffer (posted before node a's
            # subscription was confirmed); once it came, the page is live on the channel and
            # the second comes through Redis pub/sub from node b.
            for n in (1, 2):
                body = [{"page": factory.page_id, "channel": "demo.hello", "data": {"n": n}}]
                async with http.post(notify, json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                async for line in sse.content:
                    if line.startswith(b"data:") and b'"n":%d' % n in line:
                        break

        # Each node's own /metrics (what Prometheus scrapes): valid, and the cluster's figures.
        figures = {}
        for node in nodes:
            async with http.get(node.url(path("metrics"))) as r:
                assert r.status == 200
                text = await r.text()
            assert "engagement_redis_round_trip_seconds_bucket" in text
            assert "engagement_redis_round_trips_per_event" in text
            figures[node.name] = samples(text)
            code, said = await promtool_check(text)
            assert code == 0, said
        for name in ("a", "b"):
            assert figures[name]["engagement_cluster_log_appends_total"] > 0, figures
        assert figures["a"]["engagement_push_cross_node_total"] in (1, 2), figures

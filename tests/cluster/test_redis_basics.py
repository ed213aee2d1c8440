"""Redis on: refused when it cannot be correct, /ready follows Redis, limits are shared."""

from __future__ import annotations

import asyncio
import os
import shutil
from asyncio.subprocess import PIPE
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.exceptions import NoScriptError

from engagement.api.state import REDIS
from engagement.app import create_app
from engagement.cluster.redis import ClusterConfigError, RedisLink, redacted, visit_key
from engagement.throttle import Rate, RedisRateLimiter, Refusal

from ..conftest import AUTH, SITE, Factory, post_events, url
from .conftest import Cuttable, fewest_round_trips, node_settings

Client = TestClient[Any, Any]
MakeNode = Callable[..., Awaitable[Client]]


def test_redis_state_over_separate_sqlite_files_is_refused(tmp_path: Path, redis_url: str):
    settings = node_settings(tmp_path, "a", redis_url, None)

    with pytest.raises(ClusterConfigError) as refused:
        create_app(settings)

    assert str(refused.value) == (
        "redis_url is set without database_url: several nodes would each write their own "
        f"SQLite history ({settings.db_path}) and none could read a whole visit back. Set "
        "database_url (ENGAGEMENT_DATABASE_URL=postgresql://...) to share one history, or "
        "single_node = true (ENGAGEMENT_SINGLE_NODE=true) if this is the only node."
    )


def test_one_node_may_keep_redis_state_over_its_own_sqlite(tmp_path: Path, redis_url: str):
    create_app(node_settings(tmp_path, "a", redis_url, None, single_node=True))


def test_passwords_stay_out_of_logs():
    assert redacted("redis://user:s3cret@redis.internal:6380/2") == (
        "redis://user:***@redis.internal:6380/2"
    )
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_ready_says_when_redis_is_gone_and_when_it_is_back(
    make_node: MakeNode, redis_proxy: tuple[Cuttable, str]
):
    proxy, through = redis_proxy
    node = await make_node("a", through)
    r = await node.get(url(node, "ready"))
    assert r.status == 200, await r.text()
    assert (await r.json())["checks"]["redis"] == "ok"

    await proxy.cut()
    r = await node.get(url(node, "ready"))

    assert r.status == 503, await r.text()
    body = await r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"].startswith("failed: "), body

    await proxy.restore()  # Redis is back: the node reconnects by itself
    r = await node.get(url(node, "ready"))
    assert r.status == 200, await r.text()


@pytest.mark.parametrize("free", [1])
async def test_wrong_keys_on_one_node_lock_the_address_out_on_the_other(
    make_node: MakeNode, redis_url: str, factory: Factory, free: int
):
    a = await make_node("a", redis_url, auth_free_failures=free, auth_lockout_base_s=600)
    b = await make_node("b", redis_url, auth_free_failures=free, auth_lockout_base_s=600)
    await post_events(a, factory.start())
    for _ in range(free + 1):
        r = await a.get(url(a, "visit", visitID=factory.visit_id), headers={"X-API-Key": "guess"})
        assert r.status == 401, await r.text()

    r = await b.get(url(b, "visit", visitID=factory.visit_id), headers=AUTH)

    assert r.status == 429, await r.text()
    assert 500 < int(r.headers["Retry-After"]) <= 600


async def test_a_right_key_is_checked_and_resets_the_failures_in_one_round_trip(
    make_node: MakeNode, redis_url: str
):
    a = await make_node("a", redis_url, auth_free_failures=1, auth_lockout_base_s=600)
    b = await make_node("b", redis_url, auth_free_failures=1, auth_lockout_base_s=600)
    guess = {"X-API-Key": "guess"}
    assert (await b.get(url(b, "strategies"), headers=guess)).status == 401  # one free failure

    async def authorised() -> None:
        r = await a.get(url(a, "strategies"), headers=AUTH)
        assert r.status == 200, await r.text()

    cost = await fewest_round_trips(a.app[REDIS], authorised)

    assert cost == 1  # every authorised request pays this: one only
    # The failure on the other node was forgotten: one wrong key is free again, not locked.
    assert (await b.get(url(b, "strategies"), headers=guess)).status == 401
    assert (await a.get(url(a, "strategies"), headers=AUTH)).status == 200


async def test_rate_limits_count_requests_of_every_node(redis_url: str):
    a, b = RedisLink(redis_url), RedisLink(redis_url)  # two nodes' connections
    try:
        per_visitor = Rate.parse("2/hour")
        limits = [("callback_visitor:V1", per_visitor), ("callback_overall:all", Rate(100, 60))]
        now = 1_700_000_000.0

        answers = [
            await RedisRateLimiter(a).acquire(limits, now),
            await RedisRateLimiter(b).acquire(limits, now + 1),
            await RedisRateLimiter(a).acquire(limits, now + 2),
        ]

        assert answers[:2] == [None, None]
        assert answers[2] == Refusal("callback_visitor:V1", pytest.approx(1800 - 2))
        # The refused request counted against no limit: one interval later, room again.
        assert await RedisRateLimiter(b).acquire(limits, now + 1800) is None
    finally:
        await a.close()
        await b.close()


async def test_metrics_say_what_redis_costs(make_node: MakeNode, redis_url: str, factory: Factory):
    node = await make_node("a", redis_url)
    await post_events(node, factory.start())
    await post_events(node, [factory.event("Look")])

    text = await (await node.get(url(node, "metrics"))).text()

    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(samples["engagement_redis_round_trips_total"]) >= 3  # ping, two appends
    assert float(samples["engagement_cluster_log_appends_total"]) == 2
    assert float(samples["engagement_redis_round_trip_seconds_count"]) >= 3
    per_event = float(samples["engagement_redis_round_trips_per_event"])
    assert per_event == float(samples["engagement_redis_round_trips_total"]) / 3


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian package prometheus; .ci/run installs it)",
)
async def test_metrics_with_redis_pass_promtool(
    make_node: MakeNode, redis_url: str, factory: Factory
):
    node = await make_node("a", redis_url)
    await post_events(node, factory.start())
    body = await (await node.get(url(node, "metrics"))).read()
    assert PROMTOOL is not None, "CI must have promtool (.ci/run installs Debian's prometheus)"

    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await proc.communicate(body)

    assert proc.returncode == 0, out.decode() + err.decode()
    assert b"engagement_redis_round_trip_seconds_bucket" in body


async def test_a_node_without_room_refuses_a_new_visit_before_logging_it(
    make_node: MakeNode, redis_url: str, factory: Factory
):
    node = await make_node("a", redis_url, max_live_visits=1, evict_idle_after_s=3600)
    await post_events(node, factory.start())
    other = Factory()

    r = await node.post(
        url(node, "events"), json={"events": other.start()}, headers={"Origin": SITE}
    )

    assert r.status == 503, await r.text()
    assert (await r.json())["error"] == "at_capacity"
    admin = aioredis.Redis.from_url(redis_url)
    try:  # nothing logged: the tracker's retry will not be taken for a duplicate
        assert await admin.exists(visit_key(other.visit_id, "log")) == 0
        assert await admin.exists(visit_key(factory.visit_id, "log")) == 1
    finally:
        await admin.aclose()


async def _script_exists_calls(client: aioredis.Redis) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


async def test_pipelines_ask_whether_their_scripts_are_loaded_once(redis_url: str):
    """redis-py sends SCRIPT EXISTS before every pipeline holding a script (a second round
    trip per event); the link's pipelines ask once, and load again after Redis forgot them."""
    link = RedisLink(redis_url)
    count = link.script("return redis.call('INCR', KEYS[1])")
    key = visit_key("pipelined", "n")
    try:

        async def run_once() -> list[Any]:
            async with link.client.pipeline(transaction=False) as pipe:
                await count(keys=[key], client=pipe)
                pipe.get(key)
                return list(await pipe.execute())

        before = await _script_exists_calls(link.client)
        assert await run_once() == [1, b"1"]
        assert await run_once() == [2, b"2"]
        assert await run_once() == [3, b"3"]
        assert await _script_exists_calls(link.client) - before == 1

        await link.client.script_flush()  # as after a restart of Redis
        with pytest.raises(NoScriptError):
            await run_once()
        assert await run_once() == [4, b"4"]  # loaded again; the failed round did not run
    finally:
        await link.client.delete(key)
        await link.close()

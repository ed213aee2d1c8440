"""kill -9 of a real `engagement serve` node: the node left times the visits the killed one
was timing (a 1 s dwell condition fires on it, once)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import unused_port

from engagement.cluster.attempts import decode
from engagement.cluster.dues import SCHEDULE_KEY
from engagement.cluster.redis import visit_key

from ..conftest import SITE, Factory
from ..test_process import DEADLINE_S, Engine, clean_env, wait_until_up, write_settings
from .test_two_nodes import INVITES, STRATEGIES

StartNode = Callable[[str], Awaitable[Engine]]


@pytest.fixture
async def start_node(tmp_path: Path, redis_url: str, database_url: str) -> AsyncIterator[StartNode]:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "cluster.yaml").write_text(STRATEGIES)
    started: list[Engine] = []

    async def start(name: str) -> Engine:
        folder = tmp_path / name
        folder.mkdir()
        port = unused_port()
        write_settings(
            folder, port, redis_url=redis_url, database_url=database_url,
            strategies_dir=str(tmp_path / "strategies"), invites_dir=str(INVITES),
            allowed_origins=[SITE], shutdown_timeout_s=2, history_flush_interval_s=0.05,
        )  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engagement", "serve", cwd=folder, env=clean_env(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        engine = Engine(proc, port, folder)
        started.append(engine)
        await wait_until_up(engine)
        return engine

    try:
        yield start
    finally:
        for engine in started:
            if engine.proc.returncode is None:
                engine.proc.kill()
                await engine.proc.wait()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def test_a_killed_nodes_dwell_fires_once_on_the_node_left(
    start_node: StartNode, redis_url: str, factory: Factory
):
    a, b = await start_node("a"), await start_node("b")
    redis = aioredis.Redis.from_url(redis_url)
    try:
        async with aiohttp.ClientSession(headers={"Origin": SITE}) as http:
            for events in (factory.start(), factory.navigate(f"{SITE}/pricing", "Pricing")):
                async with http.post(a.url("/monitoring/events"), json={"events": events}) as r:
                    assert r.status == 200, await r.text()

        async def scheduled() -> bool:
            return await redis.zcard(SCHEDULE_KEY) == 1

        await until(scheduled, "node a put the dwell's due time in the shared schedule")
        a.proc.kill()  # kill -9: nothing more from a
        await a.proc.wait()

        async def invited() -> bool:
            return bool(await redis.hlen(visit_key(factory.visit_id, "attempts")))

        await until(invited, "node b invited the visitor")
        stored = await redis.hgetall(visit_key(factory.visit_id, "attempts"))
        [attempt] = [decode(k.decode(), v) for k, v in stored.items()]
        assert (attempt.strategy, attempt.state.value) == ("pricing-dwell", "offered")
        assert await redis.zcard(SCHEDULE_KEY) == 0
        assert b.proc.returncode is None
    finally:
        await redis.aclose()

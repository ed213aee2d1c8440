"""What a Redis Sentinel failover costs the nodes: events refused, and events accepted then lost.

Starts the servers of tests/cluster/sentinels.py (a master, its replica and one sentinel, on
free ports, nothing on disk), two nodes in this process on the ``redis+sentinel://`` URL and
one PostgreSQL schema, then posts one event every 20 ms to one visit, alternating between the
nodes; after 2 s the failover (``SENTINEL FAILOVER`` or ``kill -9`` of the master) and 15 s
more. Prints how many events were refused (503) and when, and how many accepted ones the new
master's log lacks (written to the old master after the replica took over).

    .venv/bin/python bench/failover.py failover|kill
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engagement.app import create_app
from engagement.cluster.redis import visit_key
from tests.cluster.conftest import node_settings
from tests.cluster.sentinels import Sentinels
from tests.conftest import SITE, Factory

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
PERIOD_S = 0.02  # one event every 20 ms
BEFORE_S, AFTER_S = 2.0, 15.0


async def run(how: str, database_url: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="failover-"))
    (folder / "strategies").mkdir()
    servers = Sentinels(folder / "redis")
    await servers.start()
    nodes: list[TestClient] = []  # type: ignore[type-arg]
    try:
        for name in "ab":
            app = create_app(node_settings(folder, name, servers.url(), database_url))
            node = TestClient(TestServer(app))
            await node.start_server()
            nodes.append(node)
        path = str(nodes[0].app.router["events"].url_for())
        factory = Factory()
        r = await nodes[0].post(path, json={"events": factory.start()}, headers={"Origin": SITE})
        assert r.status == 200, await r.text()
        sent: list[tuple[float, str, str]] = []  # (when, outcome, eventID)
        stop = asyncio.Event()

        async def load() -> None:
            i = 0
            while not stop.is_set():
                event = factory.event("Tick", {"i": i})
                when = time.monotonic()
                body = {"events": [event]}
                r = await nodes[i % 2].post(path, json=body, headers={"Origin": SITE})
                answer = await r.read()
                outcome = str(r.status)
                if r.status == 200 and json.loads(answer)["duplicates"]:
                    outcome = "duplicate"
                sent.append((when, outcome, event["eventID"]))
                i += 1
                await asyncio.sleep(PERIOD_S)

        task = asyncio.create_task(load())
        await asyncio.sleep(BEFORE_S)
        began = time.monotonic()
        if how == "failover":
            await servers.failover()
        else:
            await servers.master.kill()
            await servers.switched()
        switched = time.monotonic() - began
        await asyncio.sleep(AFTER_S)
        stop.set()
        await task
        new = aioredis.Redis(port=servers.replica.port, decode_responses=True)
        logged = set(await new.smembers(visit_key(factory.visit_id, "ids")))
        await new.aclose()
    finally:
        for node in nodes:
            await node.close()
        await servers.stop()
    taken = [s for s in sent if s[1] == "200"]
    refused = [s for s in sent if s[1] != "200"]
    lost = [s for s in taken if s[2] not in logged]
    print(f"{how}: the sentinel named the new master {switched:.2f} s after it began")
    print(f"  events sent {len(sent)}, accepted {len(taken)}, not accepted {len(refused)}")
    if refused:
        kinds = sorted({s[1] for s in refused})
        span = f"{refused[0][0] - began:.2f} to {refused[-1][0] - began:.2f} s"
        print(f"  not accepted ({', '.join(kinds)}) from {span} after the failover began")
    if lost:
        span = f"{lost[0][0] - began:.2f} to {lost[-1][0] - began:.2f} s"
        print(f"  accepted but not in the new master's log: {len(lost)}, sent {span} after")
    else:
        print("  accepted but not in the new master's log: 0")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("how", choices=["failover", "kill"])
    args = parser.parse_args()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(POSTGRES)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        await run(args.how, f"{POSTGRES}?search_path={schema}")
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

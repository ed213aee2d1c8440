"""Fallback load generator for bench/ingest.py when wrk is not installed.

Same arguments and output as bench/ingest.lua under wrk (one ``BENCH_RESULT {json}`` line):

    pyload.py URL DURATION_S CONNECTIONS EVENTS_PER_REQUEST RUN_NONCE SESSION_NONCE VISITORS

aiohttp ClientSession, CONNECTIONS workers each on its own keep-alive connection, bounded by
DURATION_S. It is far slower than wrk: bench/ingest.py prints its CPU use next to the result,
and a generator near 100% of its core means the figure measures the generator, not the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time

import aiohttp

ACCEPTED = re.compile(rb'"accepted":\s*(\d+),\s*"duplicates":\s*(\d+)')
HEADERS = {"Content-Type": "application/json", "Origin": "http://localhost:8000"}


class Generator:
    def __init__(
        self, per_request: int, run_nonce: str, session_nonce: str, visitors: int, batches: str
    ):
        self.per_request = per_request
        self.by_visit = batches == "visit"  # bench/ingest.lua's BATCHES
        self.run_nonce = run_nonce
        self.counter = 0
        self.clock = int(time.time() * 1000)
        self.visitors = [
            (
                f"{session_nonce}0001{i:016X}",
                f"{session_nonce}0002{i:016X}",
                f"{session_nonce}0003{i:016X}",
                f"http://localhost:8000/products/{i}",
            )
            for i in range(1, visitors + 1)
        ]

    def event(self, visitor: tuple[str, str, str, str]) -> str:
        self.counter += 1
        self.clock += 1
        visit, page, gvid, url = visitor
        sku = self.counter % 500
        return (
            f'{{"eventType":"BUSINESS","eventName":"AddToCart",'
            f'"eventID":"{self.run_nonce}0001{self.counter:016X}","pageID":"{page}",'
            f'"visitID":"{visit}","globalVisitID":"{gvid}","timestamp":{self.clock},'
            f'"url":"{url}","category":"","languageCode":"en-GB",'
            f'"data":{{"sku":"SKU-{sku}","price":{1000 + sku}}}}}'
        )

    def body(self) -> bytes:
        one = random.choice(self.visitors)
        events = (
            self.event(one if self.by_visit else random.choice(self.visitors))
            for _ in range(self.per_request)
        )
        return ('{"events":[' + ",".join(events) + "]}").encode()


async def main(argv: list[str]) -> None:
    url, duration_s, connections = argv[0], float(argv[1]), int(argv[2])
    gen = Generator(int(argv[3]), argv[4], argv[5], int(argv[6]), argv[7] if len(argv) > 7 else "")
    stats = {
        "requests": 0,
        "ok2xx": 0,
        "non2xx": 0,
        "accepted": 0,
        "duplicates": 0,
        "unparsed": 0,
        "read_errors": 0,
        "timeouts": 0,
        "bytes": 0,
    }
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=5)
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=gen.body(), headers=HEADERS) as r:
                    body = await r.read()
            except TimeoutError:
                stats["timeouts"] += 1
                continue
            except aiohttp.ClientError:
                stats["read_errors"] += 1
                continue
            latencies.append(time.perf_counter() - t0)
            stats["requests"] += 1
            stats["bytes"] += len(body)
            if 200 <= r.status < 300:
                stats["ok2xx"] += 1
                m = ACCEPTED.search(body)
                if m:
                    stats["accepted"] += int(m[1])
                    stats["duplicates"] += int(m[2])
                else:
                    stats["unparsed"] += 1
            else:
                stats["non2xx"] += 1
                if stats["non2xx"] <= 3:
                    print(f"non-2xx {r.status}: {body[:300]!r}", file=sys.stderr)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.wait_for(
            asyncio.gather(*(worker(session) for _ in range(connections))), duration_s + 10
        )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> int:
        return (
            int(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6)
            if latencies
            else 0
        )

    result = {
        "requests": stats["requests"],
        "duration_us": int(elapsed * 1e6),
        "bytes": stats["bytes"],
        "ok2xx": stats["ok2xx"],
        "non2xx": stats["non2xx"],
        "accepted": stats["accepted"],
        "duplicates": stats["duplicates"],
        "unparsed": stats["unparsed"],
        "connect_errors": 0,
        "read_errors": stats["read_errors"],
        "write_errors": 0,
        "timeouts": stats["timeouts"],
        "status_errors": stats["non2xx"],
        "lat_p50_us": pct(0.5),
        "lat_p99_us": pct(0.99),
        "lat_max_us": int(latencies[-1] * 1e6) if latencies else 0,
    }
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

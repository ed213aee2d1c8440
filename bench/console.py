"""Reads never stall the hot path: ingest p99 with 20,000 live visits, with and without three
console tabs polling the live-visitors view.

Goal (issue 10, "Reads never stall the hot path"): ingest p99 with 3 console tabs open
<= 1.5 x ingest p99 with no console, in the same run.

    .venv/bin/python bench/console.py [--visits 20000] [--tabs 3] [--duration-s 10]

The real ``engagement serve`` runs pinned to CPU 1 (as in bench/ingest.py); 20,000 visits are
made live first (``VisitStarted`` + ``PageEntered``, 25 visits per request). Then, in turns
(none, console, none, console), the load generator (wrk with bench/ingest.lua, else
bench/pyload.py) posts one event per request from a pool of 1,000 visitors for
``--duration-s``; in the console turns, ``--tabs`` threads of this process poll
``/console/visitors.json?since=<version>`` every 2 s as the console page does (API key instead of
a session; each keeps its own ``version``). The best turn of each kind is kept (the machine is
shared). Exit status: 0 within 1.5 x, 1 over, 2 no valid figure.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, BenchError, LoadResult, Server, free_port, run_load
from ingest import engine_env, settle

GOAL_RATIO = 1.5
POLL_S = 2.0  # the console page's POLL_MS
ORIGIN = "http://localhost:8000"
PATH = "/monitoring/events"
BATCH_VISITS = 25


def hex_id() -> str:
    return uuid.uuid4().hex.upper()


def post(server: Server, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        server.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def make_live(server: Server, visits: int) -> None:
    now = int(time.time() * 1000)
    for start in range(0, visits, BATCH_VISITS):
        events = []
        for n in range(start, min(start + BATCH_VISITS, visits)):
            base = {"visitID": hex_id(), "globalVisitID": hex_id(), "pageID": hex_id(),
                    "timestamp": now, "url": f"http://localhost:8000/products/{n % 500}",
                    "category": "", "languageCode": "en", "eventType": "SYSTEM"}  # fmt: skip
            events += [
                {**base, "eventName": "VisitStarted", "eventID": hex_id(),
                 "data": {"returning": False, "userAgent": "bench", "timezoneOffset": 0}},
                {**base, "eventName": "PageEntered", "eventID": hex_id(),
                 "data": {"title": f"Product {n % 500}", "referrer": "", "utm": {},
                          "focused": True, "timezoneOffset": 0}},
            ]  # fmt: skip
        post(server, PATH, {"events": events})


class Tab(threading.Thread):
    """One console tab: polls what changed since its last answer, every 2 s."""

    def __init__(self, server: Server, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.server, self.stop_event = server, stop
        self.version = 0
        self.polls = 0
        self.rows = 0
        self.slowest_ms = 0.0
        self.errors = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            url = f"{self.server.base_url}/console/visitors.json?since={self.version}"
            request = urllib.request.Request(url, headers={"X-API-Key": "bench"})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    body = json.loads(r.read())
            except OSError:
                self.errors += 1
            else:
                self.version = body["version"]
                self.rows += len(body["visits"])
                self.polls += 1
            self.slowest_ms = max(self.slowest_ms, (time.perf_counter() - started) * 1000)
            self.stop_event.wait(POLL_S)


def turn(server: Server, args: argparse.Namespace, session: str, tabs: int) -> LoadResult:
    stop = threading.Event()
    threads = [Tab(server, stop) for _ in range(tabs)]
    for t in threads:
        t.start()
    try:
        r = run_load(
            server, PATH, script=BENCH_DIR / "ingest.lua",
            script_args=["1", secrets.token_hex(6).upper(), session, "1000"],
            duration_s=args.duration_s, connections=args.connections,
        )  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    if r.non2xx or r.socket_errors or any(t.errors for t in threads):
        raise BenchError(f"errors during the run: {r} {[t.errors for t in threads]}")
    polls = sum(t.polls for t in threads)
    rows = sum(t.rows for t in threads)
    slowest = max((t.slowest_ms for t in threads), default=0.0)
    label = f"{tabs} tabs" if tabs else "no console"
    extra = f"  console: {polls} polls, {rows} rows, slowest {slowest:.1f} ms" if tabs else ""
    print(
        f"  {label:<10} {r.requests_per_s:>8,.0f} events/s  p50 {r.lat_p50_ms:6.1f} ms  "
        f"p99 {r.lat_p99_ms:6.1f} ms  server {r.server_cpu_pct:3.0f}% CPU{extra}",
        flush=True,
    )
    settle(server)
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=20_000)
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    engagement = Path(sys.executable).parent / "engagement"
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    port = free_port()
    server = Server("engine", [str(engagement), "serve"], port, tmp / "engine.log",
                    env=engine_env(port, tmp / "data", None), cwd=tmp)  # fmt: skip
    session = secrets.token_hex(6).upper()
    try:
        server.start()
        server.wait_ready()
        make_live(server, args.visits)
        settle(server)
        print(f"engine pid {server.pid}: {args.visits:,} live visits; {args.duration_s:.0f} s "
              f"turns, 1 event per request, {args.connections} connections")  # fmt: skip
        run_load(
            server,
            PATH,
            script=BENCH_DIR / "ingest.lua",
            script_args=["1", secrets.token_hex(6).upper(), session, "1000"],
            duration_s=2,
            connections=args.connections,
        )  # fmt: skip  (warm-up)
        settle(server)
        quiet: list[LoadResult] = []
        busy: list[LoadResult] = []
        for _ in range(args.rounds):
            quiet.append(turn(server, args, session, 0))
            busy.append(turn(server, args, session, args.tabs))
    except BenchError as exc:
        print(f"no valid figure: {exc}", file=sys.stderr)
        return 2
    finally:
        print(f"engine: {server.stop()} (log in {tmp})")
    best_quiet = min(r.lat_p99_ms for r in quiet)
    best_busy = min(r.lat_p99_ms for r in busy)
    ratio = best_busy / best_quiet
    print(
        f"ingest p99: {best_busy:.1f} ms with {args.tabs} console tabs / {best_quiet:.1f} ms "
        f"with none = {ratio:.2f} (goal <= {GOAL_RATIO})"
    )
    return 0 if ratio <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

"""Push benchmark: the engine's page streams and REST notify against a bare aiohttp SSE app.

Budgets (docs: /work/shared/DESIGN.md, "Budgets"): 10,000 concurrent page streams in one
process at <= 1.25 x bare aiohttp's memory per connection; REST notify -> frame in the browser
stream p99 < 5 ms at 1,000 notifications/s. Servers pinned to CPU 1, this process (the client)
to CPU 0. See bench/README.md ("Push") for how to read the output.

    .venv/bin/python bench/push.py [--streams 10000] [--live 1000] [--rate 1000]

Exit status: 0 both budgets met, 1 a budget failed, 2 no valid figure (a server failed, a
stream did not open, a notification was refused or lost, CPU 1 was shared with other work in
every try of a latency run...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    HOST,
    LOADGEN_CPU,
    SERVER_CPU,
    BenchError,
    Server,
    free_port,
    run_main,
)

MEMORY_BUDGET = 1.1  # engine bytes per stream <= 1.1 x bare aiohttp's (issue 16)
LATENCY_BUDGET_MS = 5.0  # notify -> frame p99 < 5 ms
LATENCY_RATIO_BUDGET = 1.5  # issue 16: engine p99 <= 1.5 x the bare server's, in every run
HEARTBEAT_S = 15.0  # ENGAGEMENT_PUSH_HEARTBEAT_S, and bare_sse.py's --heartbeat-s
NOFILE = 65536  # servers and client each hold ~10k sockets
ORIGIN = "http://localhost:8000"  # in the engine's default allowed_origins
API_KEY = "bench"
STREAM_PATH = "/notifications/stream"
NOTIFY_PATH = "/server/data/notification/notify/"
NOISE_PCT = 10.0  # CPU 1 used by others (% of the run) above which a run is flagged
STEAL_PCT = 5.0  # hypervisor steal on CPU 1 above which a run is flagged
TOTAL_TIMEOUT_S = 1200  # the whole benchmark, whatever happens


# -- processes and /proc --


def raise_nofile() -> None:
    """RLIMIT_NOFILE to NOFILE (root may raise the hard limit; others get their hard limit)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(hard, NOFILE)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class NofileServer(Server):
    """common.Server, with RLIMIT_NOFILE raised in the child before it execs."""

    def __post_init__(self) -> None:
        self.preexec_fn = raise_nofile

    def rss_kib(self) -> int:
        return self.memory_kib()["VmRSS"]

    def nofile(self) -> str:
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return "/".join(line.split()[3:5])
        return "?"


def cpu_fields(cpu: str) -> dict[str, int]:
    """One CPU's jiffies from /proc/stat by name."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == f"cpu{cpu}":
            return dict(zip(names, (int(x) for x in values[:8]), strict=True))
    raise BenchError(f"cpu{cpu} not in /proc/stat")


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuReport:
    """Who used CPU 1 (the servers' core) and CPU 0 (the client's) during a phase, in % of
    the phase's wall time. ``other`` = the core's user+nice+system time minus our own process's:
    other processes (tests run by others...). Interrupt and softirq time (loopback TCP) is
    charged to no process and left out of both."""

    wall_s: float
    server_pct: float  # the measured server process, all its threads
    core1_proc_pct: float  # CPU 1 user+nice+system, whoever ran
    core1_other_pct: float  # of which not the server
    core1_softirq_pct: float
    core1_steal_pct: float
    client_pct: float  # this process (on CPU 0)
    core0_other_pct: float

    @property
    def shared(self) -> bool:
        return self.core1_other_pct > NOISE_PCT or self.core1_steal_pct > STEAL_PCT

    def describe(self) -> str:
        s = (
            f"server {self.server_pct:.0f}% CPU, CPU 1 others {self.core1_other_pct:.0f}% "
            f"(softirq {self.core1_softirq_pct:.0f}%, steal {self.core1_steal_pct:.0f}%), "
            f"client {self.client_pct:.0f}% CPU, CPU 0 others {self.core0_other_pct:.0f}%"
        )
        if self.shared:
            s += "  <- SHARED: other work on CPU 1"
        elif self.core0_other_pct > NOISE_PCT:
            s += "  <- note: other work on CPU 0 (the client's core)"
        return s


class CpuMeter:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.t = time.monotonic()
        self.server_cpu = server.cpu_s()
        self.client_cpu = self_cpu_s()
        self.c1 = cpu_fields(SERVER_CPU)
        self.c0 = cpu_fields(LOADGEN_CPU)

    def report(self) -> CpuReport:
        wall = time.monotonic() - self.t
        server = self.server.cpu_s() - self.server_cpu
        client = self_cpu_s() - self.client_cpu
        c1, c0 = cpu_fields(SERVER_CPU), cpu_fields(LOADGEN_CPU)
        d1 = {k: (c1[k] - self.c1[k]) / CLK_TCK for k in c1}
        d0 = {k: (c0[k] - self.c0[k]) / CLK_TCK for k in c0}
        proc1 = d1["user"] + d1["nice"] + d1["system"]
        proc0 = d0["user"] + d0["nice"] + d0["system"]

        def pct(x: float) -> float:
            return 100 * x / wall if wall > 0 else 0.0

        return CpuReport(
            wall_s=wall,
            server_pct=pct(server),
            core1_proc_pct=pct(proc1),
            core1_other_pct=max(0.0, pct(proc1 - server)),
            core1_softirq_pct=pct(d1["softirq"] + d1["irq"]),
            core1_steal_pct=pct(d1["steal"]),
            client_pct=pct(client),
            core0_other_pct=max(0.0, pct(proc0 - client)),
        )


# -- results --


@dataclass
class MemoryResult:
    server: str
    streams: int
    rss0_kib: int
    rssn_kib: int
    open_s: float  # time to open all streams
    server_open_streams: int  # as the server counts them
    cpu: CpuReport

    @property
    def per_stream_bytes(self) -> float:
        return (self.rssn_kib - self.rss0_kib) * 1024 / self.streams


@dataclass
class LatencyResult:
    server: str
    streams: int
    sent: int
    received: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    notify_p99_ms: float  # the POST's own round trip
    cpu: CpuReport
    try_no: int = 1

    @property
    def rate(self) -> float:
        return self.sent / self.duration_s


@dataclass
class ServerResults:
    memory: MemoryResult | None = None
    linger_s: float | None = None  # closed streams still held by the server this long
    rss_after_latency_kib: int | None = None  # what the notifications left behind
    latency_tries: list[LatencyResult] = field(default_factory=list)

    @property
    def latency(self) -> LatencyResult | None:
        """The first try not flagged as shared, else the last one."""
        quiet = [r for r in self.latency_tries if not r.cpu.shared]
        return quiet[0] if quiet else (self.latency_tries[-1] if self.latency_tries else None)


# -- the client --


def new_id() -> str:
    return secrets.token_hex(16).upper()


class Pages:
    """The client's open streams on one server, each reading its frames in a task."""

    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.base_url = base_url
        self.session = session
        self.open: dict[str, tuple[aiohttp.ClientResponse, asyncio.Task[None]]] = {}  # by visit
        self.latencies_ns: list[int] | None = None  # when recording
        self.frames = 0
        self.bad_frames = 0

    async def open_one(self, visit_id: str, page_id: str, sem: asyncio.Semaphore) -> None:
        url = f"{self.base_url}{STREAM_PATH}?visitID={visit_id}&pageID={page_id}&since=0"
        async with sem:
            resp = await self.session.get(url, headers={"Origin": ORIGIN})
            try:
                if resp.status != 200:
                    body = (await resp.read())[:300]
                    raise BenchError(f"{self.name}: stream answered {resp.status}: {body!r}")
                while True:  # the retry line says the stream is established
                    line = await asyncio.wait_for(resp.content.readline(), 30)
                    if not line:
                        raise BenchError(f"{self.name}: stream ended before its retry line")
                    if line.startswith(b"retry:"):
                        break
            except BaseException:
                resp.close()
                raise
        self.open[visit_id] = (resp, asyncio.create_task(self._read(resp)))

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        content = resp.content
        try:
            while True:
                line = await content.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    now = time.perf_counter_ns()
                    try:
                        sent = json.loads(line[6:])["data"]["data"]["sent"]
                    except (ValueError, KeyError, TypeError):
                        self.bad_frames += 1
                        continue
                    self.frames += 1
                    if self.latencies_ns is not None:
                        self.latencies_ns.append(now - sent)
        except (aiohttp.ClientError, asyncio.CancelledError, ConnectionError):
            return

    async def open_many(
        self, ids: list[tuple[str, str]], concurrency: int, timeout_s: float
    ) -> None:
        sem = asyncio.Semaphore(concurrency)
        tasks = [asyncio.create_task(self.open_one(v, p, sem)) for v, p in ids]
        try:
            done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            if pending:
                raise BenchError(
                    f"{self.name}: {len(pending)} of {len(ids)} streams not established after "
                    f"{timeout_s:.0f} s"
                )
            errors = [t.exception() for t in done if t.exception() is not None]
            if errors:
                raise BenchError(
                    f"{self.name}: {len(errors)} of {len(ids)} streams failed to open; first: "
                    f"{errors[0]!r}"
                )
        finally:
            for t in tasks:
                t.cancel()

    def close(self, visit_ids: list[str]) -> None:
        for v in visit_ids:
            item = self.open.pop(v, None)
            if item is not None:
                resp, task = item
                task.cancel()
                resp.close()

    def close_all(self) -> None:
        self.close(list(self.open))


async def server_open_streams(server: Server, session: aiohttp.ClientSession, engine: bool) -> int:
    """The server's own count of open streams: the engine's /metrics, bare_sse.py's /health."""
    if engine:
        async with session.get(server.base_url + "/metrics") as r:
            text = await r.text()
        for line in text.splitlines():
            if line.startswith("engagement_open_streams "):
                return int(float(line.split()[1]))
        raise BenchError("engagement_open_streams missing from the engine's /metrics")
    async with session.get(server.base_url + "/health") as r:
        return int((await r.json())["openStreams"])


async def wait_open_streams(
    server: Server, session: aiohttp.ClientSession, engine: bool, target: int, timeout_s: float
) -> tuple[int, float]:
    """Wait until the server counts ``target`` open streams; (count, seconds waited)."""
    started = time.monotonic()
    while True:
        server.check_alive()
        n = await server_open_streams(server, session, engine)
        waited = time.monotonic() - started
        if n == target or waited > timeout_s:
            return n, waited
        await asyncio.sleep(0.25)


async def make_live(
    engine: Server, session: aiohttp.ClientSession, ids: list[tuple[str, str]]
) -> None:
    """POST a PageEntered event for each visit (50 visits per request): visits go live."""
    ts = int(time.time() * 1000)
    for i in range(0, len(ids), 50):
        events = [
            {
                "eventType": "SYSTEM",
                "eventName": "PageEntered",
                "eventID": new_id(),
                "pageID": page_id,
                "visitID": visit_id,
                "globalVisitID": new_id(),
                "timestamp": ts,
                "url": f"{ORIGIN}/bench",
                "category": "",
                "languageCode": "en-GB",
                "data": {
                    "title": "Bench",
                    "referrer": "",
                    "timezoneOffset": -60,
                    "utm": {},
                    "focused": True,
                },
            }
            for visit_id, page_id in ids[i : i + 50]
        ]
        async with session.post(
            engine.base_url + "/monitoring/events",
            json={"events": events},
            headers={"Origin": ORIGIN},
        ) as r:
            body = await r.text()
            if r.status != 200 or json.loads(body).get("accepted") != len(events):
                raise BenchError(f"engine refused PageEntered events: {r.status} {body[:300]}")


async def notify_load(
    server: Server,
    pages: Pages,
    post_session: aiohttp.ClientSession,
    visits: list[str],
    rate: float,
    duration_s: float,
) -> tuple[int, float, list[int], list[str]]:
    """Paced POSTs for ``duration_s``; returns (sent, seconds, post round trips ns, errors)."""
    period = 1.0 / rate
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    base = server.base_url + NOTIFY_PATH
    rtts: list[int] = []
    errors: list[str] = []
    inflight: set[asyncio.Task[None]] = set()

    async def post(url: str, body: bytes, sent: int) -> None:
        try:
            async with post_session.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors.append(f"{r.status} {(await r.text())[:200]}")
                else:
                    rtts.append(time.perf_counter_ns() - sent)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            errors.append(repr(exc))

    n = 0
    t0 = time.perf_counter()
    end = t0 + duration_s
    while True:
        target = t0 + n * period
        if target >= end:
            break
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        visit = random.choice(visits)
        sent = time.perf_counter_ns()
        body = (
            b'[{"channel":"gpe.publish","data":{"event":"Bench","data":{"sent":'
            + str(sent).encode()
            + b"}}}]"
        )
        task = asyncio.create_task(post(base + visit, body, sent))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        n += 1
    elapsed = time.perf_counter() - t0
    if inflight:
        _, pending = await asyncio.wait(inflight, timeout=10)
        for t in pending:
            t.cancel()
        if pending:
            errors.append(f"{len(pending)} notify requests unanswered after 10 s")
    return n, elapsed, rtts, errors


def pct(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[i] / 1e6


async def latency_run(
    server: Server,
    engine: bool,
    pages: Pages,
    post_session: aiohttp.ClientSession,
    visits: list[str],
    args: argparse.Namespace,
    try_no: int,
) -> LatencyResult:
    # warm-up at the same rate, not recorded
    await notify_load(server, pages, post_session, visits, args.rate, args.warmup_s)
    await asyncio.sleep(0.3)
    frames_before = pages.frames
    pages.latencies_ns = []
    meter = CpuMeter(server)
    sent, elapsed, rtts, errors = await notify_load(
        server, pages, post_session, visits, args.rate, args.duration_s
    )
    cpu = meter.report()
    deadline = time.monotonic() + 5
    while pages.frames - frames_before < sent and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll of a counter
        await asyncio.sleep(0.05)
    lat = sorted(pages.latencies_ns)
    pages.latencies_ns = None
    server.check_alive()
    if errors:
        raise BenchError(f"{server.name}: {len(errors)} notify errors; first: {errors[0]}")
    received = pages.frames - frames_before
    if received != sent:
        raise BenchError(f"{server.name}: {sent} notifications sent, {received} frames received")
    if pages.bad_frames:
        raise BenchError(f"{server.name}: {pages.bad_frames} frames without data.data.sent")
    rtts.sort()
    r = LatencyResult(
        server=server.name,
        streams=len(pages.open),
        sent=sent,
        received=received,
        duration_s=elapsed,
        p50_ms=pct(lat, 0.50),
        p90_ms=pct(lat, 0.90),
        p99_ms=pct(lat, 0.99),
        max_ms=lat[-1] / 1e6,
        notify_p99_ms=pct(rtts, 0.99),
        cpu=cpu,
        try_no=try_no,
    )
    print(
        f"  latency try {try_no}: {r.sent:,} notifications in {r.duration_s:.1f} s "
        f"({r.rate:,.0f}/s) to {r.streams:,} streams: p50 {r.p50_ms:.2f} ms, p90 "
        f"{r.p90_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, max {r.max_ms:.1f} ms; notify round trip "
        f"p99 {r.notify_p99_ms:.2f} ms\n    {cpu.describe()}",
        flush=True,
    )
    return r


async def bench_server(
    server: NofileServer,
    engine: bool,
    ids: list[tuple[str, str]],
    args: argparse.Namespace,
    out: ServerResults,
) -> None:
    """Memory with ``args.streams`` streams, then latency with the first ``args.live`` of them."""
    print(f"{server.name} (pid {server.pid}, RLIMIT_NOFILE {server.nofile()}):", flush=True)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as stream_session,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=30)
        ) as post_session,
    ):
        pages = Pages(server.name, server.base_url, stream_session)
        try:
            n, _ = await wait_open_streams(server, post_session, engine, 0, HEARTBEAT_S + 10)
            if n != 0:
                raise BenchError(f"{server.name}: still {n} open streams before the run")
            await asyncio.sleep(1)
            rss0 = server.rss_kib()
            meter = CpuMeter(server)
            started = time.monotonic()
            await pages.open_many(ids, args.open_concurrency, args.open_timeout_s)
            open_s = time.monotonic() - started
            cpu = meter.report()
            counted, _ = await wait_open_streams(server, post_session, engine, len(ids), 10)
            await asyncio.sleep(2)  # let the last writes and allocations settle
            server.check_alive()
            rssn = server.rss_kib()
            counted = await server_open_streams(server, post_session, engine)
            out.memory = m = MemoryResult(server.name, len(ids), rss0, rssn, open_s, counted, cpu)
            print(
                f"  memory: RSS {rss0 / 1024:,.1f} MiB with 0 streams, {rssn / 1024:,.1f} MiB "
                f"with {len(ids):,} ({m.per_stream_bytes / 1024:,.2f} KiB per stream); opened "
                f"in {open_s:.1f} s; the server counts {counted:,} open streams\n"
                f"    {cpu.describe()}",
                flush=True,
            )
            if counted != len(ids):
                raise BenchError(
                    f"{server.name} counts {counted} open streams, {len(ids)} were opened"
                )

            keep = [v for v, _ in ids[: args.live]]
            pages.close([v for v, _ in ids[args.live :]])
            n, waited = await wait_open_streams(
                server, post_session, engine, len(keep), HEARTBEAT_S + 10
            )
            out.linger_s = waited
            print(
                f"  closed {len(ids) - len(keep):,} streams: the server held them "
                f"{waited:.1f} s more (it notices a closed stream at its next write)",
                flush=True,
            )
            if n != len(keep):
                raise BenchError(f"{server.name}: {n} open streams, expected {len(keep)}")
            if args.runs > 1:  # every run is kept and judged (issue 16: 5 of 5)
                for run_no in range(1, args.runs + 1):
                    r = await latency_run(server, engine, pages, post_session, keep, args, run_no)
                    out.latency_tries.append(r)
            else:
                for try_no in range(1, args.retries + 2):
                    r = await latency_run(server, engine, pages, post_session, keep, args, try_no)
                    out.latency_tries.append(r)
                    if not r.cpu.shared:
                        break
                    print("    CPU 1 was shared: running it again", flush=True)
            await asyncio.sleep(1)
            out.rss_after_latency_kib = rss = server.rss_kib()
            sent = sum(r.sent for r in out.latency_tries)
            print(
                f"  RSS after the latency runs ({sent:,} notifications, {len(keep):,} streams "
                f"open): {rss / 1024:,.1f} MiB",
                flush=True,
            )
        finally:
            pages.close_all()


async def warm_up(
    servers: list[tuple[Server, bool]], live_ids: list[tuple[str, str]], args: argparse.Namespace
) -> None:
    """Every code path once (a few streams, notifications), before the 0-stream RSS."""
    async with (
        aiohttp.ClientSession() as session,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as stream_session,
    ):
        engine = next(s for s, is_engine in servers if is_engine)
        await make_live(engine, session, live_ids)
        for server, _ in servers:
            pages = Pages(server.name, server.base_url, stream_session)
            some = live_ids[:20]
            try:
                await pages.open_many(some, 20, 30)
                sent, _, _, errors = await notify_load(
                    server, pages, session, [v for v, _ in some], 200, 0.5
                )
                if errors:
                    raise BenchError(f"{server.name} warm-up: {errors[0]}")
                deadline = time.monotonic() + 5
                while pages.frames < sent and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll of a counter
                    await asyncio.sleep(0.05)
                if pages.frames != sent:
                    raise BenchError(f"{server.name} warm-up: {pages.frames} frames of {sent}")
            finally:
                pages.close_all()


async def run(
    engine: NofileServer, bare: NofileServer, args: argparse.Namespace
) -> tuple[ServerResults, ServerResults]:
    ids = [(new_id(), new_id()) for _ in range(args.streams)]  # the first args.live go live
    results = {"bare": ServerResults(), "engine": ServerResults()}
    async with asyncio.timeout(TOTAL_TIMEOUT_S):
        await warm_up([(bare, False), (engine, True)], ids[: args.live], args)
        await bench_server(bare, False, ids, args, results["bare"])
        await bench_server(engine, True, ids, args, results["engine"])
    return results["bare"], results["engine"]


# -- main --


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=10_000, help="concurrent streams (10000)")
    p.add_argument("--live", type=int, default=1000, help="streams kept for latency (1000)")
    p.add_argument("--rate", type=float, default=1000.0, help="notifications/s (1000)")
    p.add_argument("--duration-s", type=float, default=10.0, help="latency run (10)")
    p.add_argument("--warmup-s", type=float, default=1.0, help="before each latency run (1)")
    p.add_argument("--retries", type=int, default=2, help="latency re-runs if CPU 1 shared (2)")
    p.add_argument(
        "--runs", type=int, default=5, help="latency runs per server, all judged (5; 1: retries)"
    )
    p.add_argument("--open-concurrency", type=int, default=200, help="streams opening at once")
    p.add_argument("--open-timeout-s", type=float, default=180.0, help="to open all streams")
    p.add_argument(
        "--allow-shared",
        action="store_true",
        help="exit 0/1 even if the kept latency runs shared CPU 1",
    )
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep-data", action="store_true", help="keep the data dir and logs")
    args = p.parse_args()
    if not 1 <= args.live <= args.streams:
        p.error("--live must be 1..--streams")
    return args


def engine_env(port: int, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    env.update(
        ENGAGEMENT_HOST=HOST,
        ENGAGEMENT_PORT=str(port),
        ENGAGEMENT_DATA_DIR=str(data_dir),
        ENGAGEMENT_API_KEYS=json.dumps([API_KEY]),
        ENGAGEMENT_LOG_LEVEL="WARNING",
        ENGAGEMENT_DEMO="false",
        ENGAGEMENT_PUSH_HEARTBEAT_S=str(int(HEARTBEAT_S)),
    )
    return env


def report(bare: ServerResults, engine: ServerResults, args: argparse.Namespace) -> int:
    """The summary table; returns the exit status."""
    assert bare.memory is not None
    assert engine.memory is not None
    assert bare.latency is not None
    assert engine.latency is not None
    ratio = engine.memory.per_stream_bytes / bare.memory.per_stream_bytes
    mem_ok = ratio <= MEMORY_BUDGET
    lat_ok = engine.latency.p99_ms < LATENCY_BUDGET_MS
    shared = [r for r in (bare.latency, engine.latency) if r.cpu.shared]
    print("\nsummary:")
    print(
        f"{'server':<9} {'RSS 0':>9} {'RSS N':>10} {'KiB/stream':>10} {'open s':>7} "
        f"{'notif/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'srv CPU':>8} "
        f"{'CPU1 others':>11} {'RSS after':>10}"
    )
    for name, res in (("baseline", bare), ("engine", engine)):
        m, lat = res.memory, res.latency
        assert m is not None
        assert lat is not None
        print(
            f"{name:<9} {m.rss0_kib / 1024:>7.1f}Mi {m.rssn_kib / 1024:>8.1f}Mi "
            f"{m.per_stream_bytes / 1024:>10.2f} {m.open_s:>7.1f} {lat.rate:>8,.0f} "
            f"{lat.p50_ms:>7.2f} {lat.p99_ms:>7.2f} {lat.max_ms:>7.1f} "
            f"{lat.cpu.server_pct:>7.0f}% {lat.cpu.core1_other_pct:>10.0f}% "
            f"{(res.rss_after_latency_kib or 0) / 1024:>8.1f}Mi"
            + ("  SHARED" if lat.cpu.shared else "")
        )
    print()
    print(
        f"memory per stream, {args.streams:,} streams: engine / baseline = {ratio:.2f} "
        f"(budget <= {MEMORY_BUDGET})  {'PASS' if mem_ok else 'FAIL'}"
    )
    print(
        f"notify -> frame p99 at {engine.latency.rate:,.0f}/s, {engine.latency.streams:,} "
        f"streams: {engine.latency.p99_ms:.2f} ms (budget < {LATENCY_BUDGET_MS:g} ms; baseline "
        f"{bare.latency.p99_ms:.2f} ms)  {'PASS' if lat_ok else 'FAIL'}"
    )
    runs_ok = True
    if args.runs > 1:
        pairs = list(zip(bare.latency_tries, engine.latency_tries, strict=True))
        print(f"notify -> frame p99, each of {len(pairs)} runs of {args.duration_s:g} s:")
        passed = 0
        for i, (b, e) in enumerate(pairs, 1):
            ok = e.p99_ms <= LATENCY_RATIO_BUDGET * b.p99_ms
            passed += ok
            flags = " ".join(f"{r.server} SHARED" for r in (b, e) if r.cpu.shared)
            print(
                f"  run {i}: engine {e.p99_ms:7.2f} ms, baseline {b.p99_ms:7.2f} ms = "
                f"{e.p99_ms / b.p99_ms:5.2f} x  {'ok' if ok else 'over'} {flags}"
            )
        runs_ok = passed == len(pairs)
        print(
            f"engine p99 <= {LATENCY_RATIO_BUDGET} x baseline p99 in {passed} of {len(pairs)} "
            f"runs (budget: all)  {'PASS' if runs_ok else 'FAIL'}"
        )
    if engine.memory.server_open_streams != args.streams:
        return 2
    low = [r for r in (bare.latency, engine.latency) if r.rate < 0.9 * args.rate]
    if low:
        print(f"INVALID: notification rate {low[0].rate:,.0f}/s, below 90 % of {args.rate:g}")
        return 2
    if shared:
        print(
            "WARNING: CPU 1 was shared with other work during the kept latency run of "
            + ", ".join(r.server for r in shared)
            + " (every try): the latency figures are not reliable; rerun on a quiet machine"
        )
        if not args.allow_shared:
            return 2
    return 0 if mem_ok and lat_ok and runs_ok else 1


def main() -> int:
    args = parse_args()
    os.sched_setaffinity(0, {int(LOADGEN_CPU)})  # this process is the client: CPU 0
    raise_nofile()
    venv_bin = Path(sys.executable).parent
    engagement = venv_bin / "engagement"
    if not engagement.exists():
        raise BenchError(f"{engagement} not found: pip install -e . in this venv first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    eport, bport = free_port(), free_port()
    engine = NofileServer(
        "engine",
        [str(engagement), "serve"],
        eport,
        tmp / "engine.log",
        env=engine_env(eport, tmp / "data"),
        cwd=tmp,
    )
    bare = NofileServer(
        "baseline",
        [
            sys.executable,
            str(BENCH_DIR / "bare_sse.py"),
            "--host",
            HOST,
            "--port",
            str(bport),
            "--heartbeat-s",
            str(HEARTBEAT_S),
        ],
        bport,
        tmp / "baseline.log",
        cwd=tmp,
    )
    try:
        engine.start()
        bare.start()
        engine.wait_ready()
        bare.wait_ready()
        print(
            f"engine on {engine.base_url}, baseline on {bare.base_url} (both CPU {SERVER_CPU}); "
            f"client pid {os.getpid()} on CPU {LOADGEN_CPU}; {args.streams:,} streams, "
            f"latency with {args.live:,} at {args.rate:g}/s for {args.duration_s:g} s; "
            f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}",
            flush=True,
        )
        bare_res, engine_res = asyncio.run(run(engine, bare, args))
        status = report(bare_res, engine_res, args)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "budgets": {"memory_ratio": MEMORY_BUDGET, "p99_ms": LATENCY_BUDGET_MS},
                        "baseline": asdict(bare_res),
                        "engine": asdict(engine_res),
                        "memory_ratio": engine_res.memory.per_stream_bytes  # type: ignore[union-attr]
                        / bare_res.memory.per_stream_bytes,  # type: ignore[union-attr]
                        "status": status,
                    },
                    indent=2,
                )
                + "\n"
            )
        return status
    except TimeoutError as exc:
        raise BenchError(f"the benchmark did not finish in {TOTAL_TIMEOUT_S} s") from exc
    finally:
        print(f"engine {engine.stop(20)}; baseline {bare.stop(20)}")
        if args.keep_data:
            print(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)

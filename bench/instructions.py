"""Instructions per event: the engine's POST /monitoring/events against the bare aiohttp app,
counted by valgrind's callgrind (repeatable on a shared, noisy machine, unlike times).

Each server runs under ``valgrind --tool=callgrind --instr-atstart=no`` (startup is not
counted); after a warm-up, counting is switched on (``callgrind_control -i on``), a fixed
number of requests is sent, the engine's history writer is waited for (its thread is counted
too: every instruction of the process, all threads), and the counts are dumped. Then the same
server is counted for ``--idle-s`` with no request: what it runs on its own (timers, the
history writer's wake-ups, the strategies folder's watch) per second. Instructions per event =
(the process's instructions - that idle rate x the counted window's seconds) / events sent:
under valgrind the window lasts ~50 x longer than at full speed, and the idle work, a fraction
of a percent of a core at full speed, would otherwise weigh ~50 x more than it does there.

    .venv/bin/python bench/instructions.py [--requests 1000] [--strategies 100] [--stages]

The bare server is counted on two stacks: ``plain`` (asyncio's loop, the json module) and
``fast`` (uvloop and orjson); the engine runs as it ships. ``--stages`` also counts the engine
cut after each stage of its ingest (bench/engine_stages.py: read, validate, build, registry,
history; then the whole engine, which decides too) and prints what each stage adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, HOST, BenchError, Server, free_port
from engine_stages import STAGES

PATH = "/monitoring/events"
ORIGIN = "http://localhost:8000"


def bodies(count: int, per_request: int, visitors: int, nonce: str, pool: str = "") -> list[bytes]:
    """The same events as bench/ingest.lua: AddToCart with {sku, price}, unique eventIDs
    (``nonce``), visitors of a pool named by ``pool`` (12 hex; the warm-up and the counted
    requests share it, so visits accumulate), every visitor of the pool in turn."""
    pool = pool or nonce
    out = []
    n = 0
    clock = int(time.time() * 1000)
    for _ in range(count):
        events = []
        for _ in range(per_request):
            n += 1
            clock += 1
            v = n * 7919 % visitors + 1  # 7919 is prime: the whole pool, in a scattered order
            sku = n % 500
            events.append(
                f'{{"eventType":"BUSINESS","eventName":"AddToCart","eventID":"{nonce}0000{n:016X}",'
                f'"pageID":"{pool}0002{v:016X}","visitID":"{pool}0001{v:016X}",'
                f'"globalVisitID":"{pool}0003{v:016X}","timestamp":{clock},'
                f'"url":"http://localhost:8000/products/{v}","category":"","languageCode":"en-GB",'
                f'"data":{{"sku":"SKU-{sku}","price":{1000 + sku}}}}}'
            )
        out.append(('{"events":[' + ",".join(events) + "]}").encode())
    return out


async def send(url: str, payloads: list[bytes], connections: int) -> int:
    """POST every payload (``connections`` at a time, keep-alive); returns events accepted."""
    accepted = 0
    queue = list(reversed(payloads))
    headers = {"Content-Type": "application/json", "Origin": ORIGIN}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while queue:
            body = queue.pop()
            async with session.post(url, data=body, headers=headers) as r:
                answer = await r.json()
                if r.status != 200:
                    raise BenchError(f"{url}: {r.status} {answer}")
                accepted += answer["accepted"]

    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return accepted


def callgrind(pid: int, *args: str) -> str:
    out = subprocess.run(
        ["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise BenchError(f"callgrind_control {args}: {out.stdout}{out.stderr}")
    return out.stdout


def total_instructions(out_dir: Path, pid: int, seen: set[Path] | None = None) -> int:
    """Sum of the ``totals:`` lines of the dumps made since counting began
    (those not in ``seen``, which gets them)."""
    total = 0
    seen = set() if seen is None else seen
    for path in out_dir.glob(f"callgrind.out.{pid}*"):
        if path.name == f"callgrind.out.{pid}" or path in seen:
            continue  # the final dump at exit (not made: the server is killed)
        seen.add(path)
        text = path.read_text(errors="replace")
        # totals: the counts of this part; summary: wrong (wrapped) in a part after the first
        m = re.search(r"^totals: (\d+)", text, re.MULTILINE)
        m = m or re.search(r"^summary: (\d+)", text, re.MULTILINE)
        if m:
            total += int(m.group(1))
    return total


@dataclass
class Count:
    instructions: int  # while the requests were sent and the history written
    events: int
    seconds: float  # how long that took (under valgrind: ~50 x longer than at full speed)
    idle_per_s: float = 0.0  # the same server with no request, per second

    @property
    def raw(self) -> float:
        return self.instructions / self.events

    @property
    def per_event(self) -> float:
        """Instructions per event, less what the server runs on its own meanwhile (timers,
        its history writer's wake-ups): under valgrind the counted window lasts ~50 x longer
        than at full speed, so that idle work would weigh ~50 x more than it does there."""
        return (self.instructions - self.idle_per_s * self.seconds) / self.events


def measure(
    server: Server,
    out_dir: Path,
    payloads: list[bytes],
    warmup: list[bytes],
    per_request: int,
    connections: int,
    settle: bool,
    idle_s: float,
) -> Count:
    """Instructions of ``server`` for ``payloads``, and of ``idle_s`` with nothing to do."""
    server.start()
    server.wait_ready(timeout_s=300)
    url = server.base_url + PATH
    asyncio.run(send(url, warmup, connections))
    if settle:
        wait_settled(server)
    seen: set[Path] = set()
    total_instructions(out_dir, server.pid, seen)
    callgrind(server.pid, "-i", "on")
    started = time.monotonic()
    accepted = asyncio.run(send(url, payloads, connections))
    if settle:
        wait_settled(server)
    seconds = time.monotonic() - started
    callgrind(server.pid, "-d")
    callgrind(server.pid, "-i", "off")
    instructions = total_instructions(out_dir, server.pid, seen)
    idle = 0
    if idle_s > 0:
        callgrind(server.pid, "-i", "on")
        time.sleep(idle_s)
        callgrind(server.pid, "-d")
        callgrind(server.pid, "-i", "off")
        idle = total_instructions(out_dir, server.pid, seen)
    server.stop()
    if accepted != len(payloads) * per_request:
        raise BenchError(f"{server.name}: accepted {accepted} of {len(payloads) * per_request}")
    if not instructions:
        raise BenchError(f"{server.name}: no callgrind dump in {out_dir}")
    return Count(instructions, accepted, seconds, idle / idle_s if idle_s > 0 else 0.0)


def wait_settled(engine: Server, timeout_s: float = 600) -> None:
    """The engine's history writer has written everything (its work is counted): pending
    counts the rows of a write under way until it is committed."""
    deadline = time.monotonic() + timeout_s
    while engine.get_json("/health", timeout_s=60)["historyPending"] > 0:
        if time.monotonic() > deadline:
            raise BenchError("history still pending")
        time.sleep(0.5)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=1000, help="counted events per scenario")
    p.add_argument("--warmup", type=int, default=250, help="20-event requests before counting")
    p.add_argument("--batch", type=int, default=20, help="events per request, batch case (20)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--visitors", type=int, default=1000)
    p.add_argument("--strategies", type=int, default=100)
    p.add_argument(
        "--stacks", default="plain,fast", help="bare stacks: plain, fast (uvloop+orjson)"
    )
    p.add_argument("--scenarios", default="1,20", help="events per request, comma-separated")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument(
        "--idle-s", type=float, default=30.0, help="seconds counted with no request (0: none)"
    )
    p.add_argument("--keep", action="store_true", help="keep the dumps (callgrind_annotate)")
    p.add_argument(
        "--stages",
        action="store_true",
        help="also count the engine cut after each stage of its ingest (bench/engine_stages.py: "
        "read, validate, build, registry, history) and print what each stage adds",
    )
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise BenchError("valgrind is missing (Debian package valgrind)")
    venv_bin = Path(sys.executable).parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-instr-"))
    if args.strategies:
        from strategies import write_folder

        write_folder(tmp / "strategies", args.strategies)
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
                f"--callgrind-out-file={tmp}/callgrind.out.%p"]  # fmt: skip
    results = []
    bare = [f"bare-{stack}" for stack in args.stacks.split(",") if stack]
    cuts = [f"engine:{stage}" for stage in STAGES[:-1]] if args.stages else []
    names = [*bare, *cuts, "engine"]  # the whole engine is the last stage, "decide"
    for per_request in [int(s) for s in args.scenarios.split(",")]:
        requests = max(30, args.requests // per_request)
        for name in names:
            # Warm-up: every visitor of the pool seen several times (strategies and attempts
            # settle), then the counted requests from the same visitors.
            pool = secrets.token_hex(6).upper()
            warm = bodies(args.warmup, 20, args.visitors, secrets.token_hex(6).upper(), pool)
            payloads = bodies(
                requests, per_request, args.visitors, secrets.token_hex(6).upper(), pool
            )
            port = free_port()
            if name.startswith("engine"):
                env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
                env.update(
                    ENGAGEMENT_HOST=HOST,
                    ENGAGEMENT_PORT=str(port),
                    ENGAGEMENT_DATA_DIR=str(tmp / f"data-{per_request}"),
                    ENGAGEMENT_API_KEYS='["bench"]',
                    ENGAGEMENT_LOG_LEVEL="WARNING",
                    ENGAGEMENT_DEMO="false",
                    # No attempt expires while counting: under valgrind the run lasts ~50 x
                    # longer, and the warm-up's attempts timing out in the counted window
                    # would weigh ~50 x more than at full speed. Every visit holds its live
                    # attempt: each event is decided under strict mode (held back).
                    ENGAGEMENT_ENGAGEMENT_EXPIRATION_S="3600",
                )
                argv = [*valgrind, str(venv_bin / "engagement"), "serve"]
                if name != "engine":  # cut after a stage
                    stage = name.removeprefix("engine:")
                    argv = [*valgrind, sys.executable, str(BENCH_DIR / "engine_stages.py"), stage]
            else:
                env = dict(os.environ)
                argv = [*valgrind, sys.executable, str(BENCH_DIR / "bare_ingest.py"),
                        "--host", HOST, "--port", str(port),
                        "--stack", name.removeprefix("bare-")]  # fmt: skip
            server = Server(name, argv, port, tmp / f"{name}-{per_request}.log", env=env, cwd=tmp)
            try:
                count = measure(
                    server, tmp, payloads, warm, per_request, args.connections,
                    settle=name.startswith("engine"), idle_s=args.idle_s,
                )  # fmt: skip
            finally:
                if server.proc is not None:
                    server.stop()
            per_event = count.per_event
            results.append({"server": name, "events_per_request": per_request,
                            "requests": requests, "instructions_per_event": per_event,
                            "instructions_per_event_raw": count.raw, "seconds": count.seconds,
                            "idle_instructions_per_s": count.idle_per_s})  # fmt: skip
            print(
                f"{per_request:>3} event(s)/request  {name:<15} {per_event:>10,.0f} instructions "
                f"per event ({requests} requests counted; {count.raw:,.0f} before taking off "
                f"{count.idle_per_s:,.0f} per second of idle work over {count.seconds:.1f} s)",
                flush=True,
            )
    print()
    for per_request in sorted({r["events_per_request"] for r in results}):
        pair = {r["server"]: r["instructions_per_event"] for r in results
                if r["events_per_request"] == per_request}  # fmt: skip
        engine = pair["engine"]
        before: float | None = None
        for name in [*cuts, "engine"] if cuts else []:
            stage = name.removeprefix("engine:") if name != "engine" else STAGES[-1]
            added = "" if before is None else (
                f", {stage} adds {pair[name] - before:,.0f} "
                f"({(pair[name] - before) / engine:.0%} of the whole engine's)"
            )  # fmt: skip
            print(
                f"{per_request:>3} event(s)/request: the engine up to {stage:<8} "
                f"{pair[name]:>9,.0f} instructions per event{added}"
            )
            before = pair[name]
        for name in bare:
            print(
                f"{per_request:>3} event(s)/request: engine / {name} instructions per event = "
                f"{engine:,.0f} / {pair[name]:,.0f} = {engine / pair[name]:.2f}  "
                f"(the engine can reach at most {pair[name] / engine:.2f} x its event rate)"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.keep:
        print(f"dumps and logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

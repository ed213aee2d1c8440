"""`engagement serve` with two probes for bench/pauses.py, nothing else changed.

- Garbage collection: ``gc.callbacks`` time every collection, by generation, in wall time
  and in the CPU time of the thread that collects (``time.thread_time``).
- Loop stalls: a task that sleeps 2 ms and records how late it wakes (what any callback due
  then, such as a push frame, waits at worst), and how much of that lateness the loop's own
  thread spent on the CPU: on a machine shared with other work the wall figure also counts the
  time the process waited for a core; the CPU figure is what the engine itself stopped the loop
  for, which is the stall it would cause on a core of its own.

``SIGUSR1`` writes what was seen since the last ``SIGUSR1`` to ``$PROBE_OUT`` (JSON) and starts
over; ``SIGUSR2`` times one full collection (``gc.collect()``) inside the loop, as the next
automatic one would cost, and writes it too.

    PROBE_OUT=/tmp/probe.json .venv/bin/python bench/engine_probe.py   # + ENGAGEMENT_* settings
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

from aiohttp import web

import engagement.cli as cli

TICK_S = 0.002
OUT = os.environ.get("PROBE_OUT", "probe.json")


class Probe:
    def __init__(self) -> None:
        self.reset()
        self._gc_started = 0.0
        self._gc_cpu_started = 0.0
        self.task: asyncio.Task[None] | None = None
        self.collected = 0
        self.forced_cpu_ms = 0.0
        self.unfrozen = 0

    def reset(self) -> None:
        self.since = time.monotonic()
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.gc_cpu_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.stalls_ms: list[float] = []
        self.stalls_cpu_ms: list[float] = []
        # The tick that was due while the probe itself wrote its report (gc.get_objects() of
        # a million objects) belongs to no window.
        self.skip_tick = True

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
        else:
            gen = info["generation"]
            self.gc_ms[gen].append((time.perf_counter() - self._gc_started) * 1e3)
            self.gc_cpu_ms[gen].append((time.thread_time() - self._gc_cpu_started) * 1e3)

    async def watch_loop(self) -> None:
        while True:
            before = time.perf_counter()
            cpu_before = time.thread_time()
            await asyncio.sleep(TICK_S)
            late = time.perf_counter() - before - TICK_S
            if self.skip_tick:
                self.skip_tick = False
                continue
            self.stalls_ms.append(late * 1e3)
            # The loop thread's CPU time in the tick, up to the lateness: its own work
            self.stalls_cpu_ms.append(min(late, time.thread_time() - cpu_before) * 1e3)

    def report(self, forced_full_ms: float | None = None) -> dict[str, Any]:
        stalls = sorted(self.stalls_ms)
        stalls_cpu = sorted(self.stalls_cpu_ms)
        out: dict[str, Any] = {
            "loop_stall_cpu_max_ms": stalls_cpu[-1] if stalls_cpu else 0.0,
            "loop_stall_cpu_p99_ms": stalls_cpu[int(len(stalls_cpu) * 0.99)] if stalls_cpu else 0.0,
            "loop_stalls_cpu_over_10ms": sum(1 for s in stalls_cpu if s > 10),
            "gc_cpu": {
                str(g): {"count": len(v), "max_ms": max(v, default=0.0), "total_ms": sum(v)}
                for g, v in self.gc_cpu_ms.items()
            },
            "seconds": time.monotonic() - self.since,
            "loop_stall_max_ms": stalls[-1] if stalls else 0.0,
            "loop_stall_p99_ms": stalls[int(len(stalls) * 0.99)] if stalls else 0.0,
            "loop_stalls_over_10ms": sum(1 for s in stalls if s > 10),
            "gc": {
                str(g): {"count": len(v), "max_ms": max(v, default=0.0), "total_ms": sum(v)}
                for g, v in self.gc_ms.items()
            },
            "tracked_objects": len(gc.get_objects()),
            "frozen_objects": gc.get_freeze_count(),
            "thresholds": gc.get_threshold(),
        }
        if forced_full_ms is not None:
            out["forced_full_ms"] = forced_full_ms
            out["forced_full_cpu_ms"] = self.forced_cpu_ms
            out["collected"] = self.collected
            out["unfrozen"] = self.unfrozen
            kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
            out["tracked_by_type"] = kinds.most_common(15)
        return out

    def write(self, forced_full_ms: float | None = None) -> None:
        data = self.report(forced_full_ms)
        tmp = OUT + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, OUT)
        self.reset()


PROBE = Probe()
_create_app = cli.create_app


def _probed_app(*args: Any, **kwargs: Any) -> web.Application:
    app = _create_app(*args, **kwargs)

    async def start(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        PROBE.task = asyncio.create_task(PROBE.watch_loop())
        loop.add_signal_handler(signal.SIGUSR1, PROBE.write)
        loop.add_signal_handler(signal.SIGUSR2, forced_full)
        loop.add_signal_handler(signal.SIGWINCH, unfrozen_full)

    def forced_full() -> None:
        started = time.perf_counter()
        cpu_started = time.thread_time()
        PROBE.collected = gc.collect()
        PROBE.forced_cpu_ms = (time.thread_time() - cpu_started) * 1e3
        PROBE.write((time.perf_counter() - started) * 1e3)

    def unfrozen_full() -> None:
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        started = time.perf_counter()
        cpu_started = time.thread_time()
        PROBE.collected = gc.collect()
        PROBE.forced_cpu_ms = (time.thread_time() - cpu_started) * 1e3
        PROBE.unfrozen = frozen
        PROBE.write((time.perf_counter() - started) * 1e3)

    app.on_startup.append(start)
    return app


if __name__ == "__main__":
    gc.callbacks.append(PROBE.on_gc)
    cli.create_app = _probed_app  # type: ignore[assignment]
    sys.argv = ["engagement", "serve"]
    sys.exit(cli.main())

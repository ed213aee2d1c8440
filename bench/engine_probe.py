"""`engagement serve` with two probes for bench/pauses.py, nothing else changed.

- Garbage collection: ``gc.callbacks`` time every collection, by generation.
- Loop stalls: a task that sleeps 2 ms and records how late it wakes (what any callback due
  then, such as a push frame, waits at worst).

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
        self.task: asyncio.Task[None] | None = None
        self.collected = 0
        self.unfrozen = 0

    def reset(self) -> None:
        self.since = time.monotonic()
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.stalls_ms: list[float] = []

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_ms[info["generation"]].append((time.perf_counter() - self._gc_started) * 1e3)

    async def watch_loop(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.stalls_ms.append((time.perf_counter() - before - TICK_S) * 1e3)

    def report(self, forced_full_ms: float | None = None) -> dict[str, Any]:
        stalls = sorted(self.stalls_ms)
        out: dict[str, Any] = {
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
        PROBE.collected = gc.collect()
        PROBE.write((time.perf_counter() - started) * 1e3)

    def unfrozen_full() -> None:
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        started = time.perf_counter()
        PROBE.collected = gc.collect()
        PROBE.unfrozen = frozen
        PROBE.write((time.perf_counter() - started) * 1e3)

    app.on_startup.append(start)
    return app


if __name__ == "__main__":
    gc.callbacks.append(PROBE.on_gc)
    cli.create_app = _probed_app  # type: ignore[assignment]
    sys.argv = ["engagement", "serve"]
    sys.exit(cli.main())

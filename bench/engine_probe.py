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
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

TICK_S = 0.002
OUT = os.environ.get("PROBE_OUT", "probe.json")
# PROBE_STACKS_MS=4: a watchdog thread samples the loop thread's stack while a tick is this
# late, and the report names what ran in the longest stalls (where the loop's time went).
STACKS_MS = float(os.environ.get("PROBE_STACKS_MS", "0"))
# PROBE_CALLBACKS_MS=2: the engine runs on the plain asyncio loop (uvloop's callbacks cannot be
# timed from Python) and every callback is timed in the loop thread's CPU time; the report
# names those over this many ms (the coroutine a task step ran, or the callback).
CALLBACKS_MS = float(os.environ.get("PROBE_CALLBACKS_MS", "0"))
YOUNG = bool(os.environ.get("PROBE_YOUNG"))
# PROBE_SWITCH_MS=1: sys.setswitchinterval for the engine's process (an A/B of how long the
# loop waits for the GIL held by another thread, such as the SQLite writer's; default 5 ms).
SWITCH_MS = float(os.environ.get("PROBE_SWITCH_MS", "0"))


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
        self.gc_freed: dict[int, int] = {0: 0, 1: 0, 2: 0}  # unreachable objects collected
        self.stalls_ms: list[float] = []
        self.stalls_cpu_ms: list[float] = []
        # The longest stall's wall time, the loop thread's CPU in it and the CPU of the
        # process's other threads (the engine's SQLite writer): the rest, the process did not
        # run at all (the core taken by the kernel's network work, other processes, the host).
        self.longest: tuple[float, float, float] = (0.0, 0.0, 0.0)
        # The tick that was due while the probe itself wrote its report (gc.get_objects() of
        # a million objects) belongs to no window.
        self.skip_tick = True
        self.tick_due = 0.0
        self.tick_cpu = 0.0
        self.samples: list[tuple[str, ...]] = []
        self.stall_samples: list[tuple[float, float, list[tuple[str, ...]]]] = []
        self.slow_callbacks: dict[str, list[float]] = {}
        self.young: list[dict[str, Any]] = []

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and YOUNG and len(self.young) < 40 and info["generation"] == 0:
            young = gc.get_objects(generation=0)
            big = sorted(
                (
                    (len(o), type(o).__qualname__)
                    for o in young
                    if isinstance(o, (dict, list, set, tuple))
                ),
                reverse=True,
            )[:5]
            kinds = Counter(type(o).__qualname__ for o in young).most_common(6)
            self.young.append(
                {"n": len(young), "big": big, "kinds": kinds, "gen_counts": gc.get_count()}
            )
            del young
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu_started = time.thread_time()
        else:
            gen = info["generation"]
            self.gc_ms[gen].append((time.perf_counter() - self._gc_started) * 1e3)
            self.gc_cpu_ms[gen].append((time.thread_time() - self._gc_cpu_started) * 1e3)
            self.gc_freed[gen] += info["collected"]

    async def watch_loop(self) -> None:
        while True:
            before = time.perf_counter()
            cpu_before = time.thread_time()
            process_before = time.process_time()
            self.samples = []
            self.tick_cpu = cpu_before
            self.tick_due = before + TICK_S
            await asyncio.sleep(TICK_S)
            late = time.perf_counter() - before - TICK_S
            self.tick_due = 0.0
            if self.skip_tick:
                self.skip_tick = False
                continue
            self.stalls_ms.append(late * 1e3)
            # The loop thread's CPU time in the tick, up to the lateness: its own work
            own = time.thread_time() - cpu_before
            cpu = min(late, own) * 1e3
            self.stalls_cpu_ms.append(cpu)
            if late * 1e3 > self.longest[0]:
                others = max(0.0, time.process_time() - process_before - own) * 1e3
                self.longest = (late * 1e3, cpu, min(others, late * 1e3 - cpu))
            if self.samples:
                self.stall_samples.append((cpu, late * 1e3, self.samples))

    def watchdog(self, loop_thread: int) -> None:
        """Samples the loop thread's stack while a tick is overdue and the loop thread itself
        has run for PROBE_STACKS_MS of CPU since the tick began (PROBE_STACKS_MS)."""
        clock = time.pthread_getcpuclockid(loop_thread)
        while True:
            time.sleep(0.001)
            due = self.tick_due
            if not due or time.perf_counter() - due < STACKS_MS / 1e3:
                continue
            if (time.clock_gettime(clock) - self.tick_cpu) * 1e3 < STACKS_MS:
                continue
            frame = sys._current_frames().get(loop_thread)
            stack: list[str] = []
            while frame is not None and len(stack) < 40:
                code = frame.f_code
                name = os.path.basename(code.co_filename)
                stack.append(f"{name}:{code.co_name}:{frame.f_lineno}")
                frame = frame.f_back
            if len(self.samples) < 30:
                self.samples.append(tuple(stack))

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
            "loop_stall_longest": dict(
                zip(("wall_ms", "own_cpu_ms", "other_threads_cpu_ms"), self.longest, strict=True)
            ),
            "gc": {
                str(g): {
                    "count": len(v),
                    "max_ms": max(v, default=0.0),
                    "total_ms": sum(v),
                    "freed": self.gc_freed[g],
                }
                for g, v in self.gc_ms.items()
            },
            "tracked_objects": len(gc.get_objects()),
            "frozen_objects": gc.get_freeze_count(),
            "thresholds": gc.get_threshold(),
        }
        if YOUNG:
            out["young"] = self.young
        if CALLBACKS_MS:
            slow = sorted(self.slow_callbacks.items(), key=lambda kv: -max(kv[1]))
            out["slow_callbacks"] = [
                {"callback": k, "count": len(v), "max_cpu_ms": max(v), "total_cpu_ms": sum(v)}
                for k, v in slow[:30]
            ]
        if STACKS_MS:
            worst = sorted(self.stall_samples, key=lambda s: -s[0])[:15]
            out["stall_stacks"] = [
                {"cpu_ms": c, "wall_ms": w, "samples": [list(x) for x in samples]}
                for c, w, samples in worst
            ]
            self.stall_samples = []
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
# engagement.cli.create_app, set in __main__: bare_sse.py --probe imports this module and must
# not load the engine (its modules would weigh on the baseline's collections)
_create_app: Callable[..., web.Application] | None = None


def _probed_app(*args: Any, **kwargs: Any) -> web.Application:
    assert _create_app is not None
    app = _create_app(*args, **kwargs)
    attach(app)
    return app


def attach(app: web.Application) -> None:
    """The probes on ``app`` (the engine's, or bare_sse.py's with ``--probe``)."""

    async def start(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        PROBE.task = asyncio.create_task(PROBE.watch_loop())
        if STACKS_MS:
            loop_thread = threading.get_ident()
            threading.Thread(target=PROBE.watchdog, args=(loop_thread,), daemon=True).start()
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


def _name(handle: asyncio.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        stack = task.get_stack()  # where the step stopped, for a request its handler
        where = " > ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in stack[-3:])
        return f"task {getattr(coro, '__qualname__', coro)!s} [{where}]"
    return repr(getattr(callback, "__qualname__", callback))


def _time_callbacks() -> None:
    import uvloop

    run = asyncio.events.Handle._run
    threshold_s = CALLBACKS_MS / 1e3

    def timed_run(handle: asyncio.Handle) -> None:
        path = ""
        task = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
        if isinstance(task, asyncio.Task):
            frame = getattr(task.get_coro(), "cr_frame", None)
            if frame is not None and frame.f_code.co_name == "_handle_request":
                request = frame.f_locals.get("request")
                path = f" {request.method} {request.path}" if request is not None else ""
        started = time.thread_time()
        run(handle)
        cpu = time.thread_time() - started
        if cpu > threshold_s:
            PROBE.slow_callbacks.setdefault(_name(handle) + path, []).append(cpu * 1e3)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
    uvloop.new_event_loop = asyncio.new_event_loop  # type: ignore[assignment]


if __name__ == "__main__":
    gc.callbacks.append(PROBE.on_gc)
    if SWITCH_MS:
        sys.setswitchinterval(SWITCH_MS / 1e3)
    if CALLBACKS_MS:
        _time_callbacks()
    import engagement.cli as cli

    names = vars(cli)  # cli's own name for create_app, which `engagement serve` calls
    _create_app = names["create_app"]
    names["create_app"] = _probed_app
    sys.argv = ["engagement", "serve"]
    sys.exit(cli.main())

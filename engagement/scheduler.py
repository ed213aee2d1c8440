"""Periodic jobs, declared in one list; each is a plain coroutine taking its dependencies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from . import constants as C
from .lifecycle.owner import Lifecycle
from .monitoring.ingest import now_ms
from .notifications.hub import PushHub
from .visits.registry import VisitRegistry
from .visits.store import History

log = logging.getLogger(__name__)

PACING_TICK_S = 1.0  # each group's own refreshPeriod is applied within this tick
# Entries a sweep looks at before the loop runs again: a whole sweep of 20,000 visits held
# the loop for 2-6 ms (bench/pauses.py); a slice of 1,000 is ~0.1-0.3 ms.
SWEEP_SLICE = 1_000


async def in_slices(keys: list[str], step: Callable[[list[str]], int], size: int) -> int:
    """``step`` over ``keys`` (a snapshot: what changes meanwhile is the step's to check),
    ``size`` at a time, letting the loop run between slices; the sum of what it returned."""
    done = 0
    for start in range(0, len(keys), size):
        if start:
            await asyncio.sleep(0)
        done += step(keys[start : start + size])
    return done


async def close_idle_visits(registry: VisitRegistry, slice_size: int = SWEEP_SLICE) -> int:
    """Close visits idle past the visit timeout."""
    now = now_ms()

    def close(ids: list[str]) -> int:
        return len(registry.close_idle(now, ids))

    closed = await in_slices(registry.visit_ids(), close, slice_size)
    if closed:
        log.info("closed %d idle visits, %d live", closed, len(registry))
    return closed


CLOSE_IDLE = "close-idle-visits"


class IdleSweep(Protocol):
    async def sweep(self, now: int) -> int: ...


async def sweep_shared_visits(visits: IdleSweep) -> int:
    """Several nodes: close visits idle on every node; forget those live elsewhere."""
    return await visits.sweep(now_ms())


def shared_sweep(visits: IdleSweep) -> Job:
    return Job(partial(sweep_shared_visits, visits), C.VISIT_SWEEP_INTERVAL_S, CLOSE_IDLE)


async def purge_history(history: History, retention_days: float) -> int:
    """Delete history older than the retention period."""
    cutoff = now_ms() - int(retention_days * 86_400_000)
    deleted = await history.purge(cutoff)
    if deleted:
        log.info("purged %d visits older than %.1f days", deleted, retention_days)
    return deleted


@dataclass(frozen=True, slots=True)
class Job:
    func: Callable[[], Awaitable[object]]
    interval_s: float
    name: str


async def sweep_memory(hub: PushHub, lifecycle: Lifecycle, slice_size: int = SWEEP_SLICE) -> None:
    """Forget mailboxes of pages long gone, attempts no limit needs any more, and goal windows
    that ended."""
    now = now_ms()
    hub.sweep(now)
    await asyncio.sleep(0)
    await in_slices(list(lifecycle.by_id), partial(lifecycle.forget_old, now), slice_size)
    ledger = lifecycle.engine.ledger
    cutoff = now - C.LEDGER_DAYS * 86_400_000
    await in_slices(list(ledger.by_visitor), partial(ledger.forget_before, cutoff), slice_size)
    goals = lifecycle.goals
    await in_slices(list(goals.by_visitor), partial(goals.close_ended, now), slice_size)


async def pace_lines(lifecycle: Lifecycle) -> int:
    """Invite the paced visitors the agent groups have room for now (no browser event needed)."""
    return lifecycle.pace_lines(now_ms())


PACE_LINES = "pace-lines"


Pull = Callable[[], Awaitable[None]]


async def pace_shared_lines(lifecycle: Lifecycle, pulls: Sequence[Pull]) -> int:
    """Several nodes: the same, once what pacing reads is as the nodes left it (the feed's
    reports, the pacing counters), in the order given."""
    for pull in pulls:
        await pull()
    return lifecycle.pace_lines(now_ms())


def shared_pacing(lifecycle: Lifecycle, pulls: Sequence[Pull], period_s: float) -> Job:
    return Job(partial(pace_shared_lines, lifecycle, pulls), period_s, PACE_LINES)


def jobs(
    registry: VisitRegistry,
    history: History,
    retention_days: float,
    hub: PushHub,
    lifecycle: Lifecycle,
    pacing_period_s: float = PACING_TICK_S,
) -> list[Job]:
    # partial, not lambda: the scheduler awaits coroutine functions (and partials of them) on
    # the loop; a lambda returning a coroutine would be run in a thread and never awaited.
    return [
        Job(partial(close_idle_visits, registry), C.VISIT_SWEEP_INTERVAL_S, CLOSE_IDLE),
        Job(partial(purge_history, history, retention_days), C.PURGE_INTERVAL_S, "purge-history"),
        Job(partial(sweep_memory, hub, lifecycle), C.VISIT_SWEEP_INTERVAL_S, "sweep-memory"),
        Job(partial(pace_lines, lifecycle), pacing_period_s, PACE_LINES),
    ]


def start_scheduler(job_list: list[Job]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in job_list:
        scheduler.add_job(
            job.func, "interval", seconds=job.interval_s, id=job.name, name=job.name,
            coalesce=True, max_instances=1,
        )  # fmt: skip
    scheduler.start()
    return scheduler

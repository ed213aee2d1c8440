"""Periodic jobs, declared in one list; each is a plain coroutine taking its dependencies."""

from __future__ import annotations

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


async def close_idle_visits(registry: VisitRegistry) -> int:
    """Close visits idle past the visit timeout."""
    return len(registry.close_idle(now_ms()))


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


async def sweep_memory(hub: PushHub, lifecycle: Lifecycle) -> None:
    """Forget mailboxes of pages long gone, attempts no limit needs any more, and goal windows
    that ended."""
    now = now_ms()
    hub.sweep(now)
    lifecycle.forget_old(now)
    lifecycle.goals.close_ended(now)


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

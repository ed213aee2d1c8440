"""Agent availability per group, as outside systems report it over REST.

A report older than ``stale_after_s`` (and a group never reported) is treated as the
``when_stale`` setting says: closed (no agent: nobody is invited; the default) or open (no
limit, the behaviour before any feed is connected).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from .pacing.model import Capacity, GroupConfig

DEFAULT_STALE_AFTER_S = 60.0  # a feed that reports every few seconds has missed many reports


class WhenStale(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"


class Freshness(enum.StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    UNREPORTED = "unreported"


@dataclass(frozen=True, slots=True)
class GroupState:
    """One report; the optional figures are None when the feed did not send them."""

    agents_ready: int
    estimated_wait_s: float
    updated_at: int  # engine ms
    agents_busy: int = 0
    chats_per_agent: int | None = None
    in_progress: int | None = None
    queued: int = 0
    avg_handle_time_s: float | None = None

    def capacity(self, defaults: GroupConfig) -> Capacity:
        per_agent = self.chats_per_agent or defaults.chats_per_agent
        in_progress = self.in_progress
        if in_progress is None:  # ready agents taken as free, busy ones as full
            in_progress = self.agents_busy * per_agent
        return Capacity(
            agents_ready=self.agents_ready,
            agents_busy=self.agents_busy,
            chats_per_agent=per_agent,
            in_progress=in_progress,
            queued=self.queued,
            avg_handle_time_s=self.avg_handle_time_s or defaults.avg_handle_time_s,
            estimated_wait_s=self.estimated_wait_s,
        )


class AvailabilityBoard:
    """The last report per agent group, and how old a report may be."""

    def __init__(
        self,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        when_stale: WhenStale = WhenStale.CLOSED,
    ) -> None:
        self.groups: dict[str, GroupState] = {}
        self.stale_after_s = stale_after_s
        self.when_stale = when_stale
        # Several nodes: shares each report the feed sends here (cluster/availability.py).
        self.publish: Callable[[str, GroupState], None] | None = None

    def report(self, group: str, state: GroupState) -> None:
        """A report the feed sent to this node."""
        self.groups[group] = state
        if self.publish is not None:
            self.publish(group, state)

    def take(self, group: str, state: GroupState) -> None:
        """A report another node received: kept unless this node has a newer one."""
        mine = self.groups.get(group)
        if mine is None or state.updated_at > mine.updated_at:
            self.groups[group] = state

    def freshness(self, group: str, now_ms: int) -> Freshness:
        state = self.groups.get(group)
        if state is None:
            return Freshness.UNREPORTED
        if now_ms - state.updated_at > self.stale_after_s * 1000:
            return Freshness.STALE
        return Freshness.FRESH

    def fresh(self, group: str, now_ms: int) -> GroupState | None:
        """The group's report if it is recent enough to be believed."""
        if self.freshness(group, now_ms) is Freshness.FRESH:
            return self.groups[group]
        return None

    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        """(agents ready, estimated wait in s) for the availability gate; None when it holds
        whatever the numbers (a stale or unreported group treated as open)."""
        state = self.fresh(group, now_ms)
        if state is not None:
            return (state.agents_ready, state.estimated_wait_s)
        return None if self.when_stale is WhenStale.OPEN else (0, math.inf)

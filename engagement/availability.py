"""Agent availability per group, as outside systems report it over REST."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GroupState:
    agents_ready: int
    estimated_wait_s: float
    updated_at: int  # engine ms


class AvailabilityBoard:
    """The last report per agent group. A group never reported counts as available, so
    strategies with an `availability` condition work before any feed is connected."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupState] = {}

    def report(self, group: str, agents_ready: int, estimated_wait_s: float, now_ms: int) -> None:
        self.groups[group] = GroupState(agents_ready, estimated_wait_s, now_ms)

    def agents(self, group: str) -> tuple[int, float] | None:
        state = self.groups.get(group)
        return None if state is None else (state.agents_ready, state.estimated_wait_s)

"""Goal windows: after each attempt of a strategy with a goal, the hours in which the visitor's
goal event counts as its conversion.

Windows are indexed by visitor (globalVisitID): an event costs a dict lookup, and only the
visitor's own open windows are tested, whatever the number of attempts. A later visit of the
same visitor finds them too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..attempts import Attempt
from ..strategy.experiment import CompiledGoal
from ..visits.model import Event
from .model import Conversion

log = logging.getLogger(__name__)


class ConversionSink(Protocol):
    def record_conversion(self, conversion: Conversion) -> None: ...


@dataclass(frozen=True, slots=True)
class Window:
    attempt_id: str
    strategy: str
    variant: str
    opened_at: int  # engine ms: the decision (invited or held out alike)
    closes_at: int
    goal: CompiledGoal


class GoalWindows:
    """Open goal windows by visitor; an ingest listener that records conversions."""

    def __init__(self, sink: ConversionSink) -> None:
        self.sink = sink
        self.by_visitor: dict[str, list[Window]] = {}
        self.converted_total = 0

    def __len__(self) -> int:
        return sum(len(w) for w in self.by_visitor.values())

    def open(self, attempt: Attempt, goal: CompiledGoal) -> None:
        """Count the visitor's goal events for ``attempt`` from now until the window ends."""
        window = Window(attempt.attempt_id, attempt.strategy, attempt.variant,
                        attempt.created_at, attempt.created_at + goal.within_ms, goal)  # fmt: skip
        self.by_visitor.setdefault(attempt.global_visit_id, []).append(window)

    def on_events(self, events: list[Event]) -> None:
        by_visitor = self.by_visitor
        for event in events:
            windows = by_visitor.get(event.global_visit_id)
            if not windows:
                continue
            for w in windows:
                if w.opened_at <= event.server_time < w.closes_at and w.goal.matches(event):
                    self._convert(w, event)

    def _convert(self, w: Window, event: Event) -> None:
        self.converted_total += 1
        conversion = Conversion(w.attempt_id, event.event_id, w.strategy, w.variant,
                                event.visit_id, event.global_visit_id, w.goal.name,
                                event.server_time, w.goal.value_of(event))  # fmt: skip
        self.sink.record_conversion(conversion)
        log.info(
            "conversion %s of attempt %s (%s, %s)",
            w.goal.name,
            w.attempt_id,
            w.strategy,
            w.variant or "invited",
            extra={"visitID": event.visit_id, "attemptID": w.attempt_id},
        )

    def close_ended(self, now_ms: int, visitor_ids: Iterable[str] | None = None) -> int:
        """Forget windows that ended (given ``visitor_ids``, a slice of a sweep: only
        theirs); returns how many."""
        dropped = 0
        by_visitor = self.by_visitor
        for gvid in list(by_visitor) if visitor_ids is None else visitor_ids:
            windows = by_visitor.get(gvid)
            if windows is None:
                continue
            kept = [w for w in windows if w.closes_at > now_ms]
            dropped += len(windows) - len(kept)
            if kept:
                by_visitor[gvid] = kept
            else:
                del by_visitor[gvid]
        return dropped

    def reopen(self, attempts: Iterable[Attempt], goals: dict[str, CompiledGoal], now: int) -> None:
        """After a restart: the windows of recorded attempts that are still open."""
        for attempt in attempts:
            goal = goals.get(attempt.strategy)
            if goal is not None and attempt.created_at + goal.within_ms > now:
                self.open(attempt, goal)

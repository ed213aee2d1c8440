"""Live visits, in memory: the hot path reads and writes only here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Protocol

from .model import Event, Visit

log = logging.getLogger("engagement.visits")


class HistorySink(Protocol):
    """Where visit changes go to be kept (batched, never awaited on the hot path)."""

    def record(self, visit: Visit, events: list[Event]) -> None: ...

    def record_closed(self, visit: Visit) -> None: ...


class VisitRegistry:
    """The visits live now, keyed by visitID."""

    def __init__(self, sink: HistorySink, visit_timeout_s: float) -> None:
        self._visits: dict[str, Visit] = {}
        self._sink = sink
        self.visit_timeout_ms = int(visit_timeout_s * 1000)

    def __len__(self) -> int:
        return len(self._visits)

    def __iter__(self) -> Iterator[Visit]:
        return iter(self._visits.values())

    def get(self, visit_id: str) -> Visit | None:
        return self._visits.get(visit_id)

    def ingest(self, events: Iterable[Event]) -> tuple[list[Event], int]:
        """Apply events in order; returns the new ones and the count of duplicates."""
        fresh: list[Event] = []
        duplicates = 0
        touched: dict[str, tuple[Visit, list[Event]]] = {}
        for event in events:
            visit = self._visits.get(event.visit_id)
            if visit is None:
                visit = Visit(
                    visit_id=event.visit_id,
                    global_visit_id=event.global_visit_id,
                    started_at=event.server_time,
                    last_seen_at=event.server_time,
                )
                self._visits[event.visit_id] = visit
            elif visit.is_duplicate(event.event_id):
                duplicates += 1
                continue
            visit.apply(event)
            fresh.append(event)
            touched.setdefault(visit.visit_id, (visit, []))[1].append(event)
        for visit, visit_events in touched.values():
            self._sink.record(visit, visit_events)
        return fresh, duplicates

    def close_idle(self, now_ms: int) -> list[Visit]:
        """Close visits idle past the timeout; their history stays in the store."""
        limit = now_ms - self.visit_timeout_ms
        closed = [v for v in self._visits.values() if v.last_seen_at < limit]
        for visit in closed:
            visit.close(now_ms)
            del self._visits[visit.visit_id]
            self._sink.record_closed(visit)
        if closed:
            log.info("closed %d idle visits, %d live", len(closed), len(self._visits))
        return closed

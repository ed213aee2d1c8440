"""A restarted engine takes back the visits that were live: their pages, titles, times,
categories, identity and the events strategies count, rebuilt from the history by replaying
each visit's events, plus their engagement attempts."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..attempts import Attempt, State
from .model import NO_DIRTY, Event, Visit, VisitCaps
from .registry import VisitRegistry
from .store import History

log = logging.getLogger(__name__)

# not answered yet: paced ones wait in their agent group's line for an invitation
UNANSWERED = frozenset({State.DETECTED, State.PACED, State.OFFERED, State.SHOWN})


async def restore_visits(history: History, registry: VisitRegistry, since_ms: int) -> list[Visit]:
    """Make the visits not closed and seen since ``since_ms`` live again (at most the
    registry's cap: the most recently seen), least recently seen first."""
    found = await history.live_visits(since_ms)
    found = found[-registry.max_visits :]
    caps = VisitCaps(registry.caps.max_pages, registry.caps.max_events)  # drops not re-counted
    restored = []
    for row, events in found:
        visit = Visit(
            visit_id=row["visit_id"],
            global_visit_id=row["global_visit_id"],
            started_at=row["started_at"],
            last_seen_at=row["last_seen_at"],
        )
        replay(visit, events, caps)
        visit.last_seen_at = max(visit.last_seen_at, row["last_seen_at"])
        registry.add(visit)
        restored.append(visit)
    if restored:
        log.info("took back %d live visits from the history", len(restored))
    return restored


def replay(visit: Visit, events: Iterable[Event], caps: VisitCaps) -> None:
    """Fold stored events into a visit as ingest did; nothing is queued for writing again."""
    for event in events:
        if not visit.is_duplicate(event.event_id):
            visit.apply(event, caps)
    visit.dirty_pages = NO_DIRTY
    visit.changed = False
    visit.stored_last_seen = visit.last_seen_at


def attach_attempts(visits: Iterable[Visit], attempts: Iterable[Attempt]) -> list[Attempt]:
    """Give restored visits their attempts (the same objects the engagements hold), oldest
    first; returns those not answered yet (paced: not even invited yet)."""
    by_id = {v.visit_id: v for v in visits}
    waiting = []
    for attempt in sorted(attempts, key=lambda a: a.created_at):
        visit = by_id.get(attempt.visit_id)
        if visit is None:
            continue
        visit.attempts.append(attempt)
        if attempt.state in UNANSWERED:
            waiting.append(attempt)
    return waiting


def current_page_entries(visits: Iterable[Visit]) -> list[Event]:
    """The event that entered each visit's current page, to ask page strategies again (a dwell
    condition is scheduled anew and goes on counting from when the page was entered)."""
    found = []
    for visit in visits:
        for event in reversed(visit.events):
            if event.event_name == "PageEntered" and event.page_id == visit.current_page_id:
                found.append(event)
                break
    return found

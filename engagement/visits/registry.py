"""Live visits, in memory: the hot path reads and writes only here."""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Protocol

from .. import constants as C
from .model import Event, Visit, VisitCaps

log = logging.getLogger(__name__)

CLOSED_JOURNAL_ENTRIES = 50_000  # closed visits remembered for incremental readers


class HistorySink(Protocol):
    """Where visit changes go to be kept (batched, never awaited on the hot path)."""

    def record(self, visit: Visit, events: list[Event]) -> None: ...

    def record_closed(self, visit: Visit) -> None: ...


class AtCapacity(Exception):
    """No room for a new visit: every live visit is active; retry after ``retry_after_s``."""

    def __init__(self, live: int, retry_after_s: int) -> None:
        super().__init__(f"{live} visits are live, the most this engine holds; none is idle")
        self.retry_after_s = retry_after_s


class VisitRegistry:
    """The visits live now, keyed by visitID, least recently active first.

    At ``max_visits`` a new visit makes room by closing the least recently active visit if it
    has been idle ``evict_idle_after_s`` (written to history as if it had timed out); if
    none has, the batch is refused with :class:`AtCapacity`. Every change of a visit is
    numbered (``version``), and the order of the visits is that of their latest change, so
    that readers can ask for what changed since they last looked, or page from a version.
    """

    def __init__(
        self,
        sink: HistorySink,
        visit_timeout_s: float,
        max_visits: int = C.MAX_LIVE_VISITS,
        evict_idle_after_s: float = C.EVICT_IDLE_AFTER_S,
        caps: VisitCaps | None = None,
    ) -> None:
        self._visits: dict[str, Visit] = {}  # order: least recently active first
        self._sink = sink
        self.visit_timeout_ms = int(visit_timeout_s * 1000)
        self.max_visits = max_visits
        self.evict_idle_ms = int(evict_idle_after_s * 1000)
        self.caps = caps or VisitCaps()
        self.evicted_total = 0
        self.refused_total = 0
        self._version = itertools.count(1)
        self.version = 0  # of the latest change
        # (version, visitID) of visits closed lately, oldest first, for incremental readers.
        self._gone: deque[tuple[int, str]] = deque(maxlen=CLOSED_JOURNAL_ENTRIES)

    def __len__(self) -> int:
        return len(self._visits)

    def __iter__(self) -> Iterator[Visit]:
        return iter(self._visits.values())

    def get(self, visit_id: str) -> Visit | None:
        return self._visits.get(visit_id)

    def ingest(self, events: Iterable[Event]) -> tuple[list[Event], int]:
        """Apply events in order; returns the new ones and the count of duplicates.

        Raises :class:`AtCapacity`, before applying anything, when the batch would start
        visits there is no room for."""
        batch = list(events)
        visits = self._visits
        new_ids = {e.visit_id for e in batch if e.visit_id not in visits}
        if new_ids and len(visits) + len(new_ids) > self.max_visits:
            self._make_room(len(visits) + len(new_ids) - self.max_visits, batch[0].server_time)
        fresh: list[Event] = []
        duplicates = 0
        caps = self.caps
        touched: dict[str, tuple[Visit, list[Event]]] = {}
        for event in batch:
            visit = visits.get(event.visit_id)
            if visit is None:
                visit = Visit(
                    visit_id=event.visit_id,
                    global_visit_id=event.global_visit_id,
                    started_at=event.server_time,
                    last_seen_at=event.server_time,
                )
                visits[event.visit_id] = visit
            elif visit.is_duplicate(event.event_id):
                duplicates += 1
                continue
            visit.apply(event, caps)
            fresh.append(event)
            seen = touched.get(visit.visit_id)
            if seen is None:
                touched[visit.visit_id] = (visit, [event])
            else:
                seen[1].append(event)
        for visit_id, (visit, visit_events) in touched.items():
            del visits[visit_id]  # to the most recently active end
            visits[visit_id] = visit
            self._changed(visit)
            self._sink.record(visit, visit_events)
        return fresh, duplicates

    def apply_log(self, visit_id: str, events: list[Event], own: list[Event]) -> Visit | None:
        """Several nodes: apply a visit's entries of the shared log that this node has not
        applied yet, in the log's order (every node applies the same entries in the same
        order, so they hold one state). ``own`` are the entries this node appended: only they
        go to its history (the node that appended an event writes it)."""
        visits = self._visits
        visit = visits.get(visit_id)
        if visit is None:
            if not events:
                return None
            first = events[0]
            if len(visits) >= self.max_visits:
                self._make_room(len(visits) + 1 - self.max_visits, first.server_time)
            visit = Visit(visit_id, first.global_visit_id, first.server_time, first.server_time)
            visits[visit_id] = visit
        elif not events and not own:
            return visit
        caps = self.caps
        for event in events:
            visit.apply(event, caps)
        del visits[visit_id]  # to the most recently active end
        visits[visit_id] = visit
        self._changed(visit)
        if own:
            self._sink.record(visit, own)
        return visit

    def reserve(self, new_visits: int, now_ms: int) -> None:
        """Make room for this many visits new here, or raise :class:`AtCapacity` (before a
        batch is logged anywhere, as ``ingest`` does before applying anything)."""
        if new_visits and len(self._visits) + new_visits > self.max_visits:
            self._make_room(len(self._visits) + new_visits - self.max_visits, now_ms)

    def forget(self, visit_id: str) -> None:
        """Several nodes: drop a visit from this node's memory without closing it (it lives
        on in the shared log; this node rebuilds it if it sees the visit again)."""
        if self._visits.pop(visit_id, None) is not None:
            self.version = next(self._version)
            self._gone.append((self.version, visit_id))

    def add(self, visit: Visit) -> None:
        """Take a visit restored from history (callers add the least recently active first)."""
        self._visits[visit.visit_id] = visit
        self._changed(visit)

    def mark_changed(self, visit: Visit) -> None:
        """Something readers show changed without an event (an engagement attempt moved)."""
        if self._visits.get(visit.visit_id) is visit:
            del self._visits[visit.visit_id]
            self._visits[visit.visit_id] = visit
            self._changed(visit)

    def _changed(self, visit: Visit) -> None:
        visit.version = self.version = next(self._version)

    def recent(self, before: int | None = None) -> Iterator[Visit]:
        """Live visits, most recently changed first; with ``before``, those changed before
        that version (a cursor: it skips only what changed since, at the end)."""
        for visit in reversed(self._visits.values()):
            if before is None or visit.version < before:
                yield visit

    def changed_since(self, version: int, limit: int) -> tuple[list[Visit], list[str]] | None:
        """At most ``limit`` visits changed after ``version``, most recent first, and the
        visitIDs closed since; None when ``version`` is older than what is remembered of
        closed visits (read everything again)."""
        gone_log = self._gone
        if version > self.version:  # a version of an earlier run of the engine
            return None
        if gone_log and len(gone_log) == gone_log.maxlen and gone_log[0][0] > version:
            return None
        changed: list[Visit] = []
        for visit in reversed(self._visits.values()):
            if visit.version <= version or len(changed) == limit:
                break
            changed.append(visit)
        gone: list[str] = []
        for seq, visit_id in reversed(gone_log):
            if seq <= version:
                break
            if visit_id not in self._visits:
                gone.append(visit_id)
        return changed, gone

    def _make_room(self, needed: int, now_ms: int) -> None:
        idle_before = now_ms - self.evict_idle_ms
        victims: list[Visit] = []
        for visit in self._visits.values():  # least recently active first
            if len(victims) == needed or visit.last_seen_at > idle_before:
                break
            victims.append(visit)
        if len(victims) < needed:
            self.refused_total += 1
            raise AtCapacity(len(self._visits), C.CAPACITY_RETRY_AFTER_S)
        for visit in victims:
            self._close(visit, now_ms)
        self.evicted_total += len(victims)
        log.warning(
            "%d live visits (the cap): closed the %d least recently active early",
            self.max_visits,
            len(victims),
        )

    def _close(self, visit: Visit, now_ms: int) -> None:
        visit.close(now_ms)
        del self._visits[visit.visit_id]
        self._sink.record_closed(visit)
        self.version = next(self._version)
        self._gone.append((self.version, visit.visit_id))

    def visit_ids(self) -> list[str]:
        """The live visits' ids, least recently active first (a snapshot to sweep in slices)."""
        return list(self._visits)

    def close_idle(self, now_ms: int, visit_ids: Iterable[str] | None = None) -> list[Visit]:
        """Close visits idle past the timeout; their history stays in the store. Given
        ``visit_ids`` (a slice of a sweep), only those of them still live are looked at."""
        limit = now_ms - self.visit_timeout_ms
        if visit_ids is None:
            candidates: Iterable[Visit] = self._visits.values()
        else:
            live = self._visits
            candidates = [v for i in visit_ids if (v := live.get(i)) is not None]
        closed = [v for v in candidates if v.last_seen_at < limit]
        for visit in closed:
            self._close(visit, now_ms)
        if closed and visit_ids is None:
            log.info("closed %d idle visits, %d live", len(closed), len(self._visits))
        return closed

"""From validated envelopes to visit state: the hot path of every tracked page."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ..privacy.fields import FieldFilter
from ..visits.model import Event, EventType, Visit
from ..visits.registry import VisitRegistry
from .models import EventIn

_EVENT_TYPES = {t.value: t for t in EventType}  # a dict lookup, not an Enum call, per event


class IdentitySink(Protocol):
    """Keeps durable identities from SignIn / UserInfo / SignOut events."""

    def on_events(self, events: list[Event]) -> None: ...


class SharedLog(Protocol):
    """Several nodes: the visits' events go through a log they share (engagement.cluster)."""

    async def ingest(self, batch: Sequence[EventIn]) -> tuple[list[Event], int]: ...

    async def visit(self, visit_id: str) -> Visit | None: ...  # as every node logged it


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ingestor:
    def __init__(self, registry: VisitRegistry, identities: IdentitySink | None = None) -> None:
        self.registry = registry
        self.identities = identities
        # StrategySet.stamp of the strategies running: (sent, url, title) -> category
        self.categorize: Callable[[str, str, str], str] | None = None
        self.fields: FieldFilter | None = None  # the allow-list of UserInfo/SignIn fields
        self.erased: dict[str, int] = {}  # visitID -> until (ms): erased, its events dropped
        self.accepted_total = 0
        self.duplicates_total = 0
        self.shared: SharedLog | None = None  # set when redis_url is
        self.erased_dropped_total = 0

    def refuse_visits(self, visit_ids: Iterable[str], until_ms: int) -> None:
        """A visitor's erasure: events of these visits are dropped until ``until_ms``, so that
        a tab still open does not bring the erased visit back."""
        now = now_ms()
        self.erased = {v: t for v, t in self.erased.items() if t > now}
        self.erased.update(dict.fromkeys(visit_ids, until_ms))

    def ingest(self, batch: Sequence[EventIn]) -> tuple[list[Event], int]:
        """Stamp server time, drop duplicates, update visits; returns the new events (for the
        lifecycle owner to decide on) and the count of duplicates."""
        fresh, duplicates = self.registry.ingest(self.build(batch))
        if fresh and self.identities is not None:  # as ``took`` does, without the call
            self.identities.on_events(fresh)
        self.accepted_total += len(fresh)
        self.duplicates_total += duplicates
        return fresh, duplicates

    def took(self, fresh: list[Event], duplicates: int) -> None:
        """New events were applied: identities learn from them, and the counts."""
        if fresh and self.identities is not None:
            self.identities.on_events(fresh)
        self.accepted_total += len(fresh)
        self.duplicates_total += duplicates

    def build(self, batch: Sequence[EventIn]) -> list[Event]:
        """The batch's events, stamped with the server time and their pages' categories."""
        server_time = now_ms()
        if self.erased:
            erased = self.erased
            kept = [e for e in batch if erased.get(e["visitID"], 0) <= server_time]
            self.erased_dropped_total += len(batch) - len(kept)
            batch = kept
        types = _EVENT_TYPES
        events = [
            Event(  # by position, in Event's field order (keywords cost more, per event)
                e["eventID"],
                types[e["eventType"]],
                e["eventName"],
                e["visitID"],
                e["pageID"],
                e["globalVisitID"],
                e["timestamp"],
                server_time,
                e["url"],
                e.get("category", ""),
                e.get("languageCode", ""),
                e.get("data") or {},
            )
            for e in batch
        ]
        if self.categorize is not None:
            self._stamp_categories(events, self.categorize)
        if self.fields is not None:
            keep = self.fields.keep
            for event in events:
                if event.event_type is EventType.SYSTEM:
                    event.data = keep(event.event_name, event.data)
        return events

    def _stamp_categories(
        self, events: list[Event], categorize: Callable[[str, str, str], str]
    ) -> None:
        """Every event carries the categories its page's URL or title matched."""
        for event in events:
            title = event.data.get("title") if event.event_name == "PageEntered" else None
            if not isinstance(title, str):
                visit = self.registry.get(event.visit_id)
                page = visit.pages.get(event.page_id) if visit else None
                title = page.title if page else ""
            event.category = categorize(event.category, event.url, title)

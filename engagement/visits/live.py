"""Reading live visits without holding up the hot path: pages of a bounded scan, filters,
and what changed since a reader last looked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .model import Visit
from .registry import VisitRegistry

MAX_SCAN_VISITS = 5000  # visits one listing call looks at; the cursor continues from there

VisitTest = Callable[[Visit], bool]


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """What a listing keeps: every given criterion must hold."""

    page: str | None = None  # part of the current page's URL
    category: str | None = None  # a category the visit has seen
    identity: str | None = None  # anonymous | recognized | authenticated
    engagement: str | None = None  # none | live | a state of the latest attempt

    def tests(self) -> list[VisitTest]:
        found: list[VisitTest] = []
        if self.page is not None:
            part = self.page
            found.append(lambda v: (p := v.current_page) is not None and part in p.url)
        if self.category is not None:
            name = self.category
            found.append(lambda v: name in v.category_pages)
        if self.identity is not None:
            identity = self.identity
            found.append(lambda v: v.identity.value == identity)
        if self.engagement is not None:
            found.append(_engagement_test(self.engagement))
        return found


def _engagement_test(wanted: str) -> VisitTest:
    if wanted == "none":
        return lambda v: not v.attempts
    if wanted == "live":
        return lambda v: any(a.live for a in v.attempts)
    return lambda v: bool(v.attempts) and v.attempts[-1].state.value == wanted


@dataclass(frozen=True, slots=True)
class LivePage:
    visits: list[Visit]
    next_cursor: int | None  # pass as ``cursor`` for the next page; None: nothing more


def live_page(
    registry: VisitRegistry,
    live_filter: LiveFilter,
    limit: int,
    cursor: int | None = None,
    max_scan: int = MAX_SCAN_VISITS,
) -> LivePage:
    """Up to ``limit`` matching visits, most recently changed first, from ``cursor`` (a version:
    visits that changed since the previous page come back on top, not in the next pages).
    At most ``max_scan`` visits are looked at; a page may come back short with a cursor."""
    tests = live_filter.tests()
    found: list[Visit] = []
    last_version: int | None = None
    for scanned, visit in enumerate(registry.recent(before=cursor)):
        if len(found) == limit or scanned == max_scan:
            return LivePage(found, last_version)
        last_version = visit.version
        if all(test(visit) for test in tests):
            found.append(visit)
    return LivePage(found, None)


def summary(visit: Visit, now: int) -> dict[str, Any]:
    """A live visit as listings show it: the visit's summary, categories, engagement state."""
    last = visit.attempts[-1] if visit.attempts else None
    return {
        **visit.summary(now),
        "version": visit.version,
        "categories": dict(visit.category_pages),
        "engagement": None if last is None else last.state.value,
        "engagementStrategy": None if last is None else last.strategy,
    }

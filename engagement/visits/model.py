"""Visit state: plain dataclasses, updated by events already validated at the edge."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .. import constants as C

JSONDict = dict[str, Any]


@dataclass(slots=True)
class VisitCaps:
    """What one live visit may hold in memory (the store keeps everything), and what was
    dropped at a cap: shared by every visit of a registry, read by /metrics."""

    max_pages: int = C.MAX_PAGES_PER_VISIT
    max_events: int = C.MAX_EVENTS_PER_VISIT
    pages_dropped: int = 0
    events_dropped: int = 0
    categories_dropped: int = 0
    user_info_dropped: int = 0  # UserInfo/SignIn fields not merged: past the keys or bytes cap


DEFAULT_CAPS = VisitCaps()
# Empty containers shared by every visit until it has something of its own (a visit's
# memory is mostly such containers): never mutated, replaced by a new one on the first write.
NO_UTM: dict[str, str] = {}
NO_INFO: JSONDict = {}
NO_COUNTS: dict[str, int] = {}
NO_SEQUENCE: list[str] = []
NO_DIRTY: dict[str, Page] = {}


class Identity(enum.StrEnum):
    ANONYMOUS = "anonymous"
    RECOGNIZED = "recognized"  # told who they are (UserInfo)
    AUTHENTICATED = "authenticated"  # signed in (SignIn), until SignOut (then recognized)


class EventType(enum.StrEnum):
    SYSTEM = "SYSTEM"
    BUSINESS = "BUSINESS"


@dataclass(slots=True)
class Event:
    event_id: str
    event_type: EventType
    event_name: str
    visit_id: str
    page_id: str
    global_visit_id: str
    timestamp: int  # browser clock, epoch ms
    server_time: int  # engine clock, epoch ms
    url: str
    category: str
    language_code: str
    data: JSONDict

    @property
    def categories(self) -> list[str]:
        return self.category.split(";") if self.category else []

    def as_json(self) -> JSONDict:
        """The GWE envelope plus the engine's `serverTime`."""
        return {
            "eventType": self.event_type.value,
            "eventName": self.event_name,
            "eventID": self.event_id,
            "pageID": self.page_id,
            "visitID": self.visit_id,
            "globalVisitID": self.global_visit_id,
            "timestamp": self.timestamp,
            "serverTime": self.server_time,
            "url": self.url,
            "category": self.category,
            "languageCode": self.language_code,
            "data": self.data,
        }


@dataclass(slots=True)
class Page:
    page_id: str
    url: str
    title: str = ""
    referrer: str = ""
    utm: dict[str, str] = field(default_factory=lambda: NO_UTM)  # replaced, never changed
    entered_at: int = 0  # server ms
    exited_at: int | None = None
    focused: bool = False
    focused_ms: int = 0  # time with focus, up to focus_since
    focus_since: int | None = None

    def set_focus(self, focused: bool, now_ms: int) -> None:
        if focused and self.focus_since is None:
            self.focus_since = now_ms
        elif not focused and self.focus_since is not None:
            self.focused_ms += max(0, now_ms - self.focus_since)
            self.focus_since = None
        self.focused = focused

    def focused_time_ms(self, now_ms: int) -> int:
        running = now_ms - self.focus_since if self.focus_since is not None else 0
        return self.focused_ms + max(0, running)

    def as_json(self) -> JSONDict:
        return {
            "pageID": self.page_id,
            "url": self.url,
            "title": self.title,
            "referrer": self.referrer,
            "utm": self.utm,
            "enteredAt": self.entered_at,
            "exitedAt": self.exited_at,
            "focused": self.focused,
            "focusedMs": self.focused_ms,
        }


HELD_BACK_KEPT = 5  # per visit: enough to answer "why was this visitor not invited?"


@dataclass(slots=True)
class Visit:
    visit_id: str
    global_visit_id: str
    started_at: int  # server ms
    last_seen_at: int
    identity: Identity = Identity.ANONYMOUS
    user_info: JSONDict = field(default_factory=lambda: NO_INFO)  # replaced, never changed
    returning: bool = False
    user_agent: str = ""
    language_code: str = ""
    timezone_offset: int | None = None
    closed_at: int | None = None
    pages: dict[str, Page] = field(default_factory=dict)  # insertion order = browsing order
    pages_viewed: int = 0  # pages ever entered (older ones may have left memory at the cap)
    current_page_id: str | None = None
    device: str = "desktop"  # mobile | tablet | desktop, from the user agent
    category_pages: dict[str, int] = field(default_factory=lambda: NO_COUNTS)  # per category
    category_sequence: list[str] = field(default_factory=lambda: NO_SEQUENCE)  # page by page
    events: list[Event] = field(default_factory=list)  # recent, for strategies, oldest first
    # Strategy cache: per event condition, the last event it tested and how many matched.
    match_counts: dict[object, tuple[Event, int]] | None = None
    attempts: list[Any] = field(default_factory=list)  # engagement attempts, oldest first
    # Strategies that matched but were held back: (ms, strategy, why), the last few; None
    # until one is (most visits never have one).
    held_back: list[tuple[int, str, str]] | None = None
    dirty_pages: dict[str, Page] = field(default_factory=lambda: NO_DIRTY)  # changed, in order
    changed: bool = True  # something the visit row holds changed, besides last_seen_at
    stored_last_seen: int = -1  # last_seen_at when the visit row was last written
    version: int = 0  # the registry's change number of this visit's latest change
    _seen_event_ids: dict[str, None] = field(default_factory=dict)

    def hold_back(self, now_ms: int, strategy: str, why: str) -> None:
        """Record why a strategy that matched did not invite (the last HELD_BACK_KEPT)."""
        held = self.held_back
        if held is None:
            self.held_back = [(now_ms, strategy, why)]
            return
        last = held[-1]
        if last[1] == strategy and last[2] == why:
            held[-1] = (now_ms, strategy, why)  # the same reason again: its latest time
            return
        held.append((now_ms, strategy, why))
        if len(held) > HELD_BACK_KEPT:
            del held[0]

    def is_duplicate(self, event_id: str) -> bool:
        return event_id in self._seen_event_ids

    @property
    def current_page(self) -> Page | None:
        return self.pages.get(self.current_page_id) if self.current_page_id else None

    def time_on_site_s(self, now_ms: int) -> float:
        return max(0, now_ms - self.started_at) / 1000

    def time_on_page_s(self, now_ms: int) -> float:
        page = self.current_page
        return max(0, now_ms - page.entered_at) / 1000 if page else 0.0

    def apply(self, event: Event, caps: VisitCaps = DEFAULT_CAPS) -> None:
        """Fold one new (not duplicate) event into the visit's state."""
        seen = self._seen_event_ids
        seen[event.event_id] = None
        if len(seen) > C.MAX_EVENT_IDS_KEPT_PER_VISIT:
            del seen[next(iter(seen))]
        self._keep(event, caps)
        # Kept events share the visit's strings (one copy of each ID per visit, not per event).
        event.visit_id = self.visit_id
        event.global_visit_id = self.global_visit_id
        now = event.server_time
        self.last_seen_at = max(self.last_seen_at, now)
        if event.language_code != self.language_code:
            if event.language_code:
                self.language_code = event.language_code
                self.changed = True
        else:
            event.language_code = self.language_code
        page = self.pages.get(event.page_id)
        if page is None:
            event.url = shared(event.url)
            page = self.pages[event.page_id] = Page(event.page_id, event.url, entered_at=now)
            self.pages_viewed += 1
            self._enter(page)
            self._dirty(page)
            if len(self.pages) > caps.max_pages:
                self._drop_page(caps)
        event.page_id = page.page_id
        if event.url == page.url:
            event.url = page.url
        if event.event_type is EventType.SYSTEM:  # business events change no page nor visit row
            self.changed = True
            self._dirty(page)
            _SYSTEM_HANDLERS.get(event.event_name, _ignore)(self, page, event, caps)

    def _dirty(self, page: Page) -> None:
        if self.dirty_pages is NO_DIRTY:
            self.dirty_pages = {}
        self.dirty_pages[page.page_id] = page

    def _keep(self, event: Event, caps: VisitCaps) -> None:
        """Keep the event for strategies; past the cap the visit's oldest kept one leaves."""
        if event.event_name in FOLDED_EVENT_NAMES:
            return
        events = self.events
        events.append(event)
        if len(events) > caps.max_events:
            del events[0]
            caps.events_dropped += 1

    @property
    def events_by_name(self) -> dict[str, list[Event]]:
        """The kept events by name (for strategies written in Python)."""
        by_name: dict[str, list[Event]] = {}
        for event in self.events:
            by_name.setdefault(event.event_name, []).append(event)
        return by_name

    def _drop_page(self, caps: VisitCaps) -> None:
        """Past the cap the oldest page leaves memory, except the landing page (the referrer
        strategies read) and the current one; its row was queued for the store when it
        changed, and ``pages_viewed`` keeps counting."""
        landing = next(iter(self.pages))
        for page_id in self.pages:
            if page_id != landing and page_id != self.current_page_id:
                del self.pages[page_id]
                caps.pages_dropped += 1
                return

    def _count_categories(self, event: Event, caps: VisitCaps) -> None:
        if not event.category:
            return
        if self.category_pages is NO_COUNTS:
            self.category_pages, self.category_sequence = {}, []
        counts = self.category_pages
        for name in event.categories:
            if name in counts:
                counts[name] += 1
            elif len(counts) < C.MAX_CATEGORIES_PER_VISIT:
                counts[name] = 1
            else:  # a client naming ever new categories: not kept
                caps.categories_dropped += 1
                continue
            sequence = self.category_sequence
            sequence.append(name)
            if len(sequence) > C.MAX_CATEGORY_SEQUENCE:
                del sequence[0]

    def _enter(self, page: Page) -> None:
        previous = self.current_page
        if previous is not None and previous is not page and previous.exited_at is None:
            previous.exited_at = page.entered_at
            previous.set_focus(False, page.entered_at)
            self._dirty(previous)
        self.current_page_id = page.page_id

    def close(self, now_ms: int) -> None:
        """End the visit; its current page ends when the visitor was last seen."""
        self.closed_at = now_ms
        self.changed = True
        page = self.current_page
        if page is not None and page.exited_at is None:
            page.exited_at = self.last_seen_at
            page.set_focus(False, self.last_seen_at)
            self._dirty(page)

    def summary(self, now_ms: int) -> JSONDict:
        """What the live-visitors list shows: state without the event log."""
        page = self.current_page
        return {
            "visitID": self.visit_id,
            "globalVisitID": self.global_visit_id,
            "identity": self.identity.value,
            "returning": self.returning,
            "startedAt": self.started_at,
            "lastSeenAt": self.last_seen_at,
            "timeOnSiteS": round(self.time_on_site_s(now_ms), 3),
            "pagesViewed": self.pages_viewed,
            "currentPage": None
            if page is None
            else {**page.as_json(), "timeOnPageS": round(self.time_on_page_s(now_ms), 3)},
        }


# Texts that repeat across visitors (URLs, titles, referrers, user agents): one copy for all.
SHARED_TEXTS_MAX = 50_000  # distinct texts; when full the table starts over
SHARED_TEXT_MAX_CHARS = 500  # longer texts are rare: each visit keeps its own
_shared: dict[str, str] = {}


def shared(text: str) -> str:
    """The one copy of a text many visits hold (bounded: a client sending ever new texts only
    makes the table start over)."""
    found = _shared.get(text)
    if found is not None:
        return found
    if len(text) <= SHARED_TEXT_MAX_CHARS:
        if len(_shared) >= SHARED_TEXTS_MAX:
            _shared.clear()
        _shared[text] = text
    return text


_TABLET = re.compile(r"iPad|Tablet|PlayBook|Silk|Android(?!.*Mobile)", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android.*Mobile|Windows Phone", re.IGNORECASE)


def device_of(user_agent: str) -> str:
    """mobile, tablet or desktop: coarse, from the user agent (enough for targeting)."""
    if _TABLET.search(user_agent):
        return "tablet"
    return "mobile" if _MOBILE.search(user_agent) else "desktop"


def _ignore(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    return None


def _visit_started(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    data = event.data
    visit.returning = bool(data.get("returning", visit.returning))
    user_agent = data.get("userAgent")
    if isinstance(user_agent, str):
        visit.user_agent = data["userAgent"] = shared(user_agent)
        visit.device = device_of(visit.user_agent)
    offset = data.get("timezoneOffset")
    if isinstance(offset, int):
        visit.timezone_offset = offset


def _page_entered(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    data = event.data
    page.url = event.url
    title, referrer = data.get("title"), data.get("referrer")
    if isinstance(title, str):
        page.title = data["title"] = shared(title)
    if isinstance(referrer, str):
        page.referrer = data["referrer"] = shared(referrer)
    utm = data.get("utm")
    if isinstance(utm, dict):
        if utm:
            page.utm = {str(k): str(v) for k, v in utm.items()}
        else:
            page.utm = data["utm"] = NO_UTM
    page.set_focus(bool(data.get("focused", False)), event.server_time)
    offset = data.get("timezoneOffset")
    if isinstance(offset, int):
        visit.timezone_offset = offset
    visit._enter(page)
    visit._count_categories(event, caps)


def _page_exited(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    page.exited_at = event.server_time
    page.set_focus(False, event.server_time)


def _focus_changed(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    page.set_focus(bool(event.data.get("focused")), event.server_time)


def merge_user_info(current: JSONDict, new: JSONDict, caps: VisitCaps) -> JSONDict:
    """``current`` updated with ``new`` within ``MAX_USER_INFO_KEYS`` keys and
    ``MAX_USER_INFO_BYTES`` bytes of JSON (each event is bounded, but not their sum): a field
    past either cap is not merged, the fields already known are kept, and it is counted."""
    merged = dict(current)
    size = sum(_field_bytes(k, v) for k, v in merged.items())
    for key, value in new.items():
        added = _field_bytes(key, value)
        known = key in merged
        grown = size + added - (_field_bytes(key, merged[key]) if known else 0)
        if grown > C.MAX_USER_INFO_BYTES or (not known and len(merged) >= C.MAX_USER_INFO_KEYS):
            caps.user_info_dropped += 1
            continue
        merged[key], size = value, grown
    return merged


def _field_bytes(key: str, value: Any) -> int:
    """One field's share of the merged JSON object (``"key":value,``)."""
    text = json.dumps({key: value}, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode()) - 1


def _user_info(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    visit.user_info = merge_user_info(visit.user_info, event.data, caps)
    if visit.identity is Identity.ANONYMOUS:
        visit.identity = Identity.RECOGNIZED


def _sign_in(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    visit.user_info = merge_user_info(visit.user_info, event.data, caps)
    visit.identity = Identity.AUTHENTICATED


def _sign_out(visit: Visit, page: Page, event: Event, caps: VisitCaps) -> None:
    """GWE: after SignOut the visitor is still known (Recognized), not anonymous again."""
    if visit.identity is Identity.AUTHENTICATED:
        visit.identity = Identity.RECOGNIZED


_SYSTEM_HANDLERS = {
    "VisitStarted": _visit_started,
    "PageEntered": _page_entered,
    "PageExited": _page_exited,
    "FocusChanged": _focus_changed,
    "UserInfo": _user_info,
    "SignIn": _sign_in,
    "SignOut": _sign_out,
}
SYSTEM_EVENT_NAMES = frozenset(_SYSTEM_HANDLERS)
# What these say is in the visit and its pages (user agent, focus, exit times): they are not
# kept as events for strategies, so that they never push business events out at the cap.
FOLDED_EVENT_NAMES = frozenset({"VisitStarted", "PageExited", "FocusChanged"})

"""Compiling conditions into predicates: pure functions of a visit and the time.

A predicate answers ``(holds, due_ms)``: whether the condition holds now and, when it does not,
the time at which it may start to hold with no new event from the browser (``None`` if only an
event can change it). Dues are how a visitor who just sits on a page still gets invited.
"""

from __future__ import annotations

import contextlib
import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ..visits.model import Event, Page, Visit
from .schema import (
    Availability,
    Condition,
    EventCondition,
    Op,
    Schedule,
    TextCondition,
    TextMatch,
)

AVAILABILITY_RECHECK_MS = 5_000  # a visit waiting for a free agent is looked at again this often


class AvailabilityView(Protocol):
    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        """(agents ready, estimated wait in s) for a group, or None when the gate holds
        whatever the numbers (a stale or unreported group treated as open, or a paced one)."""


@dataclass(slots=True)
class Ctx:
    visit: Visit
    now_ms: int
    availability: AvailabilityView


Verdict = tuple[bool, int | None]
Pred = Callable[[Ctx], Verdict]
TRUE: Verdict = (True, None)
FALSE: Verdict = (False, None)


# -- text --


def _text_matcher(m: TextMatch) -> Callable[[str], bool]:
    if m.equals is not None:
        want = m.equals.lower()
        return lambda s: s.lower() == want
    if m.contains is not None:
        part = m.contains.lower()
        return lambda s: part in s.lower()
    pattern = fnmatch.translate(m.wildcard) if m.wildcard is not None else (m.regex or "")
    regex = re.compile(pattern, re.IGNORECASE)
    if m.wildcard is not None:
        return lambda s: regex.match(s) is not None
    return lambda s: regex.search(s) is not None


def text_test(cond: TextCondition) -> Callable[[str], bool]:
    """True when any `match` holds (or there is none) and no `exclude` does."""
    matches = [_text_matcher(m) for m in cond.match or []]
    excludes = [_text_matcher(m) for m in cond.exclude]

    def test(s: str) -> bool:
        if matches and not any(f(s) for f in matches):
            return False
        return not any(f(s) for f in excludes)

    return test


def _on_page(get: Callable[[Page], str], cond: TextCondition) -> Pred:
    test = text_test(cond)

    def pred(ctx: Ctx) -> Verdict:
        page = ctx.visit.current_page
        return TRUE if page is not None and test(get(page)) else FALSE

    return pred


def _referrer(cond: TextCondition) -> Pred:
    test = text_test(cond)  # the visit's landing page: where the visitor came from

    def pred(ctx: Ctx) -> Verdict:
        first = next(iter(ctx.visit.pages.values()), None)
        return TRUE if first is not None and test(first.referrer) else FALSE

    return pred


def _utm(key: str, cond: TextCondition) -> Pred:
    test = text_test(cond)

    def pred(ctx: Ctx) -> Verdict:
        for page in ctx.visit.pages.values():
            value = page.utm.get(key)
            if value is not None and test(value):
                return TRUE
        return FALSE

    return pred


# -- events and their data --

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda a, b: a in b,
    "contains": lambda a, b: str(b).lower() in str(a).lower(),
}
_MISSING = object()


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def field_value(data: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of event data, or None."""
    value = _lookup(data, path)
    return None if value is _MISSING else value


def _numeric(expected: Any) -> bool:
    """'600' compares as 600 when the strategy compares with a number (or numbers)."""
    return isinstance(expected, int | float) or (
        isinstance(expected, list) and any(isinstance(e, int | float) for e in expected)
    )


# A test of a `where`: the path's parts, the operator's function (None for exists), the value
# to compare with and whether it compares as a number; worked out once per strategy.
Check = tuple[tuple[str, ...], Callable[[Any, Any], bool] | None, Any, bool]


def _checks(where: dict[str, dict[Op, Any]]) -> list[Check]:
    return [
        (tuple(path.split(".")), _OPS.get(op), v, _numeric(v))
        for path, ops in where.items()
        for op, v in ops.items()
    ]


def _holds(checks: list[Check], data: dict[str, Any]) -> bool:
    """Whether every check holds on ``data`` (one call per event: no call per check)."""
    for parts, compare, expected, numeric in checks:
        actual: Any = data
        for part in parts:
            if not isinstance(actual, dict) or part not in actual:
                actual = _MISSING
                break
            actual = actual[part]
        if compare is None:  # exists
            if (actual is not _MISSING) != bool(expected):
                return False
            continue
        if actual is _MISSING:
            return False
        if numeric and isinstance(actual, str):
            with contextlib.suppress(ValueError):
                actual = float(actual)
        try:
            if not compare(actual, expected):
                return False
        except TypeError:  # "abc" > 5: not a match, not a crash
            return False
    return True


def event_test(cond: EventCondition) -> Callable[[Event], bool]:
    checks = _checks(cond.where)

    def test(event: Event) -> bool:
        return _holds(checks, event.data)

    return test


def _user(where: dict[str, dict[Op, Any]]) -> Pred:
    checks = _checks(where)

    def pred(ctx: Ctx) -> Verdict:
        return TRUE if _holds(checks, ctx.visit.user_info) else FALSE

    return pred


def _event(cond: EventCondition) -> Pred:
    test, name, count = event_test(cond), cond.name, cond.count

    key = object()  # this condition's entry in each visit's match counts

    def pred(ctx: Ctx) -> Verdict:
        events = ctx.visit.events
        # Test each event once, not at every evaluation: the ones after the last tested (the
        # list drops its oldest at the visit's cap, so a last tested one gone means all new).
        counts = ctx.visit.match_counts
        if counts is None:
            counts = ctx.visit.match_counts = {}
        last, seen = counts.get(key, (None, 0))
        if events and events[-1] is not last:
            start = len(events) - 1
            while start > 0 and events[start - 1] is not last:
                start -= 1
            for i in range(start, len(events)):
                if events[i].event_name == name and test(events[i]):
                    seen += 1
            counts[key] = (events[-1], seen)
        return TRUE if seen >= count else FALSE

    return pred


# -- time --


def _time_on_page(seconds: float) -> Pred:
    wait_ms = int(seconds * 1000)

    def pred(ctx: Ctx) -> Verdict:
        page = ctx.visit.current_page
        if page is None or page.exited_at is not None:  # gone: no dwell to wait for
            return FALSE
        due = page.entered_at + wait_ms
        return TRUE if ctx.now_ms >= due else (False, due)

    return pred


def _time_on_site(seconds: float) -> Pred:
    wait_ms = int(seconds * 1000)

    def pred(ctx: Ctx) -> Verdict:
        due = ctx.visit.started_at + wait_ms
        return TRUE if ctx.now_ms >= due else (False, due)

    return pred


def schedule_pred(schedule: Schedule) -> Pred:
    zone = ZoneInfo(schedule.timezone)

    def pred(ctx: Ctx) -> Verdict:
        local = datetime.fromtimestamp(ctx.now_ms / 1000, zone)
        today = local.date()
        if schedule.until_date is not None and today > schedule.until_date:
            return FALSE
        if schedule.from_date is not None and today < schedule.from_date:
            start = datetime.combine(schedule.from_date, datetime.min.time(), zone)
            return (False, int(start.timestamp() * 1000))
        if not schedule.hours:
            return TRUE
        now_t = local.timetz().replace(tzinfo=None)
        day, yesterday = local.weekday(), (local.weekday() - 1) % 7
        for h in schedule.hours:
            if h.start < h.end:
                if day in h.days and h.start <= now_t < h.end:
                    return TRUE
            elif (day in h.days and now_t >= h.start) or (yesterday in h.days and now_t < h.end):
                return TRUE  # hours past midnight, e.g. 22:00-02:00
        opening = _next_opening(schedule, local)
        return (False, None if opening is None else int(opening.timestamp() * 1000))

    return pred


def _next_opening(schedule: Schedule, local: datetime) -> datetime | None:
    best: datetime | None = None
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        for h in schedule.hours:
            if day.weekday() in h.days:
                start = datetime.combine(day, h.start, local.tzinfo)
                if start > local and (best is None or start < best):
                    best = start
        if best is not None:
            return best
    return None


def availability_pred(av: Availability) -> Pred:
    def pred(ctx: Ctx) -> Verdict:
        report = ctx.availability.agents(av.group, ctx.now_ms)
        if report is None:
            return TRUE
        ready, wait_s = report
        min_ready = 1 if av.min_ready is None else av.min_ready
        if ready >= min_ready and (av.max_wait_s is None or wait_s <= av.max_wait_s):
            return TRUE
        return (False, ctx.now_ms + AVAILABILITY_RECHECK_MS)

    return pred


# -- combinators --


def all_of(preds: list[Pred]) -> Pred:
    if len(preds) == 1:
        return preds[0]

    def pred(ctx: Ctx) -> Verdict:
        due: int | None = None
        for p in preds:
            holds, when = p(ctx)
            if not holds:
                if when is None:
                    return FALSE
                due = when if due is None else max(due, when)
        return TRUE if due is None else (False, due)

    return pred


def any_of(preds: list[Pred]) -> Pred:
    def pred(ctx: Ctx) -> Verdict:
        due: int | None = None
        for p in preds:
            holds, when = p(ctx)
            if holds:
                return TRUE
            if when is not None:
                due = when if due is None else min(due, when)
        return (False, due)

    return pred


def not_of(inner: Pred) -> Pred:
    def pred(ctx: Ctx) -> Verdict:
        return FALSE if inner(ctx)[0] else TRUE

    return pred


def compile_condition(c: Condition) -> Pred:
    """All keys given in one condition item must hold."""
    preds: list[Pred] = []
    if c.url is not None:
        preds.append(_on_page(lambda p: p.url, c.url))
    if c.title is not None:
        preds.append(_on_page(lambda p: p.title, c.title))
    if c.referrer is not None:
        preds.append(_referrer(c.referrer))
    for key, cond in (c.utm or {}).items():
        preds.append(_utm(key, cond))
    if c.language is not None:
        prefixes = tuple(lang.lower() for lang in c.language)
        preds.append(lambda ctx: (ctx.visit.language_code.lower().startswith(prefixes), None))
    if c.device is not None:
        devices = frozenset(c.device)
        preds.append(lambda ctx: (ctx.visit.device in devices, None))
    if c.visitor is not None:
        returning = c.visitor == "returning"
        preds.append(lambda ctx: (ctx.visit.returning is returning, None))
    if c.identity is not None:
        identities = frozenset(c.identity)
        preds.append(lambda ctx: (ctx.visit.identity.value in identities, None))
    if c.user is not None:
        preds.append(_user(c.user))
    if c.time_on_page_s is not None:
        preds.append(_time_on_page(c.time_on_page_s))
    if c.time_on_site_s is not None:
        preds.append(_time_on_site(c.time_on_site_s))
    if c.pages_viewed is not None:
        n = c.pages_viewed
        preds.append(lambda ctx: (ctx.visit.pages_viewed >= n, None))
    if c.category is not None:
        name, count = c.category.name, c.category.count
        preds.append(lambda ctx: (ctx.visit.category_pages.get(name, 0) >= count, None))
    if c.categories_all is not None:
        names = tuple(c.categories_all)
        preds.append(lambda ctx: (all(n in ctx.visit.category_pages for n in names), None))
    if c.categories_in_sequence is not None:
        preds.append(_sequence(tuple(c.categories_in_sequence)))
    if c.event is not None:
        preds.append(_event(c.event))
    if c.all is not None:
        preds.append(all_of([compile_condition(x) for x in c.all]))
    if c.any is not None:
        preds.append(any_of([compile_condition(x) for x in c.any]))
    if c.not_ is not None:
        preds.append(not_of(compile_condition(c.not_)))
    return all_of(preds)


def _sequence(names: tuple[str, ...]) -> Pred:
    def pred(ctx: Ctx) -> Verdict:
        sequence, start = ctx.visit.category_sequence, 0
        if len(sequence) < len(names):  # too short (often empty): no ValueError to make
            return FALSE
        for name in names:  # each after the one before it (list.index: no generator per name)
            try:
                start = sequence.index(name, start) + 1
            except ValueError:
                return FALSE
        return TRUE

    return pred


PAGE = "page"  # page changes: URL, title, pages viewed, dwell, visit facts
IDENTITY = "identity"


def trigger_keys(c: Condition) -> set[str]:
    """What can make this condition change: the index the engine looks strategies up by."""
    keys: set[str] = set()
    page_kinds = (c.url, c.title, c.referrer, c.utm, c.language, c.device, c.visitor,
                  c.time_on_page_s, c.time_on_site_s, c.pages_viewed)  # fmt: skip
    if any(k is not None for k in page_kinds):
        keys.add(PAGE)
    if c.identity is not None or c.user is not None:
        keys.add(IDENTITY)
    if c.category is not None:
        keys.add(f"category:{c.category.name}")
    for name in (c.categories_all or []) + (c.categories_in_sequence or []):
        keys.add(f"category:{name}")
    if c.event is not None:
        keys.add(f"event:{c.event.name}")
    for sub in (c.all or []) + (c.any or []):
        keys |= trigger_keys(sub)
    if c.not_ is not None:
        keys |= trigger_keys(c.not_) | {PAGE}  # a `not` can turn true when the page changes
    return keys

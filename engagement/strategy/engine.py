"""The decision engine: which strategy, if any, invites a visit now. Pure and synchronous."""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..attempts import LIVE, NEXT, Attempt, State
from ..visits.model import Event, Visit
from .conditions import IDENTITY, PAGE, AvailabilityView, Ctx, Pred, Verdict
from .experiment import CompiledGoal, Experiment
from .schema import Availability, DeclaredEvent, Limits, Offer

CATEGORY_CACHE_SIZE = 4096  # distinct (URL, title) pairs remembered per strategy set
MIN_RECHECK_MS = 250  # the timer tick; a condition is not asked again sooner than this
PAGE_EVENTS = frozenset({"PageEntered", "VisitStarted"})
IDENTITY_EVENTS = frozenset({"SignIn", "SignOut", "UserInfo"})
STRICT_MODE = "strict mode: an engagement is live"  # why a matching strategy was held back


class VisitLookup(Protocol):
    def get(self, visit_id: str) -> Visit | None: ...


@dataclass(frozen=True, slots=True)
class CompiledStrategy:
    name: str
    priority: int
    keys: frozenset[str]
    predicate: Pred
    offer: Offer
    limits: Limits
    decide: str = "engine"  # or "external": an outside system answers engage/noengage
    source: str = ""  # where it was defined, for reports
    line: int = 0
    description: str = ""
    experiment: Experiment | None = None  # goal, holdout and variants, if any
    availability: Availability | None = None  # the agent group that paces it
    # The file's own conditions alone, and its gates (schedule, availability) by name, so that
    # a visitor the conditions match but a gate holds back is told why (visit.held_back).
    conditions: Pred | None = None
    gates: tuple[tuple[str, Pred], ...] = ()


@runtime_checkable
class PythonStrategy(Protocol):
    """A strategy written in Python, for logic a file cannot express.

    Put a module in ``strategies/`` that defines ``strategies = [MyStrategy(), ...]``.
    ``triggers`` says what can change the answer (so the engine only asks when it may):
    ``"page"`` (page views and dwell), ``"identity"``, ``"event:<Name>"``, ``"category:<name>"``.
    ``evaluate`` answers True (invite now), False, or a number of seconds after which to ask
    again (for conditions that ripen with time).
    """

    name: str
    priority: int
    triggers: frozenset[str]
    offer: Offer

    def evaluate(self, visit: Visit, now_ms: int) -> bool | float: ...


def from_python(strategy: PythonStrategy, source: str) -> CompiledStrategy:
    def predicate(ctx: Ctx) -> Verdict:
        answer = strategy.evaluate(ctx.visit, ctx.now_ms)
        if isinstance(answer, bool):
            return (answer, None)
        return (False, ctx.now_ms + int(float(answer) * 1000))

    limits = getattr(strategy, "limits", None) or Limits()
    return CompiledStrategy(
        name=strategy.name, priority=strategy.priority, keys=frozenset(strategy.triggers),
        predicate=predicate, offer=strategy.offer, limits=limits, source=source,
        description=(type(strategy).__doc__ or "").strip(),
    )  # fmt: skip


class StrategySet:
    """An immutable snapshot of every loaded strategy, indexed by what can trigger it."""

    def __init__(
        self,
        strategies: Sequence[CompiledStrategy] = (),
        categories: dict[str, list[str]] | None = None,
        declared_events: Sequence[DeclaredEvent] = (),
    ) -> None:
        self.strategies = sorted(strategies, key=lambda s: (-s.priority, s.name))
        self.by_name = {s.name: s for s in self.strategies}
        rank = {s.name: i for i, s in enumerate(self.strategies)}
        by_key: dict[str, list[CompiledStrategy]] = {}
        for s in self.strategies:
            for key in s.keys:
                by_key.setdefault(key, []).append(s)
        self._by_key = {k: tuple(v) for k, v in by_key.items()}
        self._rank = rank
        self.categories = {name: tags for name, tags in (categories or {}).items()}
        self._tags = [
            (name, tuple(t.lower() for t in tags)) for name, tags in self.categories.items()
        ]
        self.declared_events = list(declared_events)
        # Pages repeat: the same URL and title get the same categories (one cache per set, so a
        # reload starts afresh).
        self._categorize_cached = functools.lru_cache(maxsize=CATEGORY_CACHE_SIZE)(self._categorize)
        self._stamped_cached = functools.lru_cache(maxsize=CATEGORY_CACHE_SIZE)(self._stamped)
        # Few distinct key sets (event names x categories): their candidates, once each.
        self._candidates_cached = functools.lru_cache(maxsize=CATEGORY_CACHE_SIZE)(self._candidates)

    def __len__(self) -> int:
        return len(self.strategies)

    def group_of(self, name: str) -> str | None:
        """The agent group that paces this strategy, if it names one."""
        found = self.by_name.get(name)
        return None if found is None or found.availability is None else found.availability.group

    def goals(self) -> dict[str, CompiledGoal]:
        """Each strategy's goal, by strategy name (for strategies that have one)."""
        return {
            s.name: s.experiment.goal
            for s in self.strategies
            if s.experiment is not None and s.experiment.goal is not None
        }

    def candidates(self, keys: Iterable[str]) -> list[CompiledStrategy]:
        """Strategies an event with these keys may trigger, highest priority first."""
        found = self._candidates_cached(keys if isinstance(keys, frozenset) else frozenset(keys))
        return list(found)

    def _candidates(self, keys: frozenset[str]) -> tuple[CompiledStrategy, ...]:
        lists = [found for k in keys if (found := self._by_key.get(k))]
        if not lists:
            return ()
        if len(lists) == 1:
            return lists[0]
        unique = {s.name: s for group in lists for s in group}
        return tuple(sorted(unique.values(), key=lambda s: self._rank[s.name]))

    def categorize(self, url: str, title: str) -> list[str]:
        """Categories whose tags appear in the URL or the title."""
        if not self._tags:
            return []
        return self._categorize_cached(url, title)

    def _categorize(self, url: str, title: str) -> list[str]:
        url, title = url.lower(), title.lower()
        return [name for name, tags in self._tags if any(t in url or t in title for t in tags)]

    def stamp(self, sent: str, url: str, title: str) -> str:
        """An event's ``category``: the categories it was sent with (``;``-separated), then
        those its page's URL or title match, each once; as sent when none matches. Cached:
        events of a page repeat these three, and share the one string."""
        if not self._tags:
            return sent
        return self._stamped_cached(sent, url, title)

    def _stamped(self, sent: str, url: str, title: str) -> str:
        found = self._categorize_cached(url, title)
        if not found:
            return sent
        return ";".join(dict.fromkeys([c for c in sent.split(";") if c] + found))


def event_keys(event: Event) -> frozenset[str]:
    return _keys(event.event_name, event.category)


@functools.lru_cache(maxsize=4096)
def _keys(name: str, category: str) -> frozenset[str]:
    """The index keys an event can trigger (few distinct names and categories: cached)."""
    keys = {f"event:{name}"}
    keys.update(f"category:{c}" for c in category.split(";") if c)
    if name in PAGE_EVENTS:
        keys.add(PAGE)
    elif name in IDENTITY_EVENTS:
        keys.add(IDENTITY)
    return frozenset(keys)


@dataclass(slots=True)
class VisitorLedger:
    """Attempts per visitor (globalVisitID), across visits: frequency limits read it."""

    by_visitor: dict[str, list[Attempt]] = field(default_factory=dict)

    def add(self, attempt: Attempt) -> None:
        self.by_visitor.setdefault(attempt.global_visit_id, []).append(attempt)

    def of(self, global_visit_id: str) -> list[Attempt]:
        return self.by_visitor.get(global_visit_id, [])

    def forget_before(self, cutoff_ms: int, visitor_ids: Iterable[str] | None = None) -> int:
        """Drop attempts created before ``cutoff_ms`` (given ``visitor_ids``, a slice of a
        sweep: only theirs); how many visitors were left with none."""
        by_visitor = self.by_visitor
        gone = 0
        for gvid in list(by_visitor) if visitor_ids is None else visitor_ids:
            attempts = by_visitor.get(gvid)
            if attempts is None:
                continue
            kept = [a for a in attempts if a.created_at >= cutoff_ms]
            if kept:
                by_visitor[gvid] = kept
            else:
                del by_visitor[gvid]
                gone += 1
        return gone


def _with_later(states: frozenset[State]) -> frozenset[State]:
    """``states`` and every state an attempt can move to after one of them (``NEXT``)."""
    seen = set(states)
    todo = list(states)
    while todo:
        for after in NEXT.get(todo.pop(), frozenset()):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return frozenset(seen)


# The states an attempt can be in once it has passed through one that a cooldown reads
# (today DECLINED, LAUNCHED, COMPLETED and FAILED): an attempt in any other state has none of
# them among its transitions, and the cooldowns skip it without reading them.
_MAY_COOL = _with_later(frozenset({State.DECLINED, State.LAUNCHED, State.COMPLETED}))


def blocked_by_limits(
    s: CompiledStrategy, visit: Visit, ledger: VisitorLedger, now_ms: int
) -> str | None:
    """Why a frequency limit stops this strategy for this visit now (``limit <name>``, as the
    visit records it), or None."""
    limits = s.limits
    name = s.name
    offers = 0
    for a in visit.attempts:  # every event asks each candidate: a loop, no generator
        if a.strategy == name:
            offers += 1
    if offers >= limits.per_visit:
        return "limit per_visit"
    history = ledger.of(visit.global_visit_id)
    if limits.per_visitor is not None:
        since = now_ms - int(limits.days * 86_400_000)
        if sum(1 for a in history if a.strategy == s.name and a.created_at >= since) >= (
            limits.per_visitor
        ):
            return "limit per_visitor"
    decline_since = now_ms - int(limits.cooldown_after_decline_s * 1000)
    chat_since = now_ms - int(limits.cooldown_after_chat_s * 1000)
    callback_since = now_ms - int(limits.cooldown_after_callback_s * 1000)
    for a in history:
        if a.state not in _MAY_COOL:
            continue  # no state a cooldown reads is among its transitions
        declined = a.at(State.DECLINED)
        mine = limits.decline_silences == "visitor" or a.strategy == s.name
        if declined is not None and declined > decline_since and mine:
            return "limit cooldown_after_decline"
        if a.media == "chat":
            ended = a.at(State.COMPLETED) or a.at(State.LAUNCHED)
            if ended is not None and ended > chat_since:
                return "limit cooldown_after_chat"
        elif a.media == "callback":
            taken = a.at(State.COMPLETED)  # GMS took the callback
            if taken is not None and taken > callback_since:
                return "limit cooldown_after_callback"
    return None


class Engine:
    """Evaluates strategies on events and on dues (conditions that ripen with time)."""

    def __init__(
        self,
        strategies: StrategySet,
        availability: AvailabilityView,
        ledger: VisitorLedger | None = None,
        strict: bool = True,
    ) -> None:
        self.strategies = strategies
        self.availability = availability
        self.ledger = ledger or VisitorLedger()
        self.strict = strict
        self._heap: list[tuple[int, int, str, str]] = []
        self._scheduled: dict[tuple[str, str], int] = {}
        self._seq = itertools.count()
        self.evaluations = 0

    def busy(self, visit: Visit) -> bool:
        """Strict mode: one live engagement at a time per visit."""
        if not self.strict:
            return False
        for attempt in visit.attempts:  # noqa: SIM110 - every event: no generator
            if attempt.state in LIVE:
                return True
        return False

    def on_events(
        self, visit: Visit, events: Iterable[Event], now_ms: int
    ) -> CompiledStrategy | None:
        keys: frozenset[str] | None = None
        for event in events:  # most often one event: its cached keys as they are
            found = _keys(event.event_name, event.category)
            keys = found if keys is None else keys | found
        candidates = self.strategies.candidates(keys or frozenset())
        if self.busy(visit):
            self._hold_matching(visit, candidates, now_ms, STRICT_MODE)
            return None
        return self._first_match(visit, candidates, now_ms)

    def on_due(self, now_ms: int, visits: VisitLookup) -> list[tuple[Visit, CompiledStrategy]]:
        """Re-evaluate strategies whose time came, highest priority first for each visit."""
        due_by_visit: dict[str, list[CompiledStrategy]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            due, _, visit_id, name = heapq.heappop(heap)
            if self._scheduled.get((visit_id, name)) != due:
                continue  # superseded by a later schedule
            del self._scheduled[(visit_id, name)]
            strategy = self.strategies.by_name.get(name)
            if strategy is not None:
                due_by_visit.setdefault(visit_id, []).append(strategy)
        decided: list[tuple[Visit, CompiledStrategy]] = []
        for visit_id, strategies in due_by_visit.items():
            visit = visits.get(visit_id)
            chosen = None if visit is None else self.decide_due(visit, strategies, now_ms)
            if chosen is not None and visit is not None:
                decided.append((visit, chosen))
        return decided

    def decide_due(
        self, visit: Visit, strategies: list[CompiledStrategy], now_ms: int
    ) -> CompiledStrategy | None:
        """Ask the strategies whose time came for this visit, highest priority first."""
        if self.busy(visit):  # those that hold now say why they did not invite
            self._hold_matching(visit, strategies, now_ms, STRICT_MODE)
            return None
        strategies.sort(key=lambda s: (-s.priority, s.name))
        return self._first_match(visit, strategies, now_ms)

    def take_dues(self) -> list[tuple[str, str, int]]:
        """Several nodes: hand every scheduled (visitID, strategy, due ms) over to the shared
        schedule, forgetting them here."""
        taken = [(visit_id, name, due) for (visit_id, name), due in self._scheduled.items()]
        self._scheduled.clear()
        self._heap.clear()
        return taken

    def forget_visits(self, visit_ids: Collection[str]) -> int:
        """A visitor's erasure: their scheduled conditions go now, not when they ripen (the
        schedule would hold their visitIDs until then). How many."""
        gone = [key for key in self._scheduled if key[0] in visit_ids]
        for key in gone:
            del self._scheduled[key]
        if gone:
            self._heap = [entry for entry in self._heap if entry[2] not in visit_ids]
            heapq.heapify(self._heap)
        return len(gone)

    @property
    def next_due(self) -> int | None:
        """When the earliest scheduled condition ripens (engine ms), if any."""
        return self._heap[0][0] if self._heap else None

    @property
    def pending_dues(self) -> int:
        """Visit/strategy pairs waiting for a condition to ripen."""
        return len(self._scheduled)

    def _first_match(
        self, visit: Visit, candidates: list[CompiledStrategy], now_ms: int
    ) -> CompiledStrategy | None:
        ctx = Ctx(visit, now_ms, self.availability)
        for s in candidates:
            limit = blocked_by_limits(s, visit, self.ledger, now_ms)
            if limit is not None:  # once a visit had its offers, every event of it comes here
                self.evaluations += 1
                if s.predicate(ctx)[0]:
                    visit.hold_back(now_ms, s.name, limit)
                continue
            self.evaluations += 1
            holds, due = s.predicate(ctx)
            if holds:
                return s
            if s.gates:
                self._hold_by_gate(visit, s, ctx, now_ms)
            if due is not None:  # never sooner than MIN_RECHECK_MS: a due in the past would spin
                self._schedule(visit.visit_id, s.name, max(due, now_ms + MIN_RECHECK_MS))
        return None

    def _hold_matching(
        self, visit: Visit, candidates: list[CompiledStrategy], now_ms: int, why: str
    ) -> None:
        """Record on the visit each candidate whose conditions hold now but that ``why`` holds
        back (no due is scheduled for them: nothing more to ask)."""
        ctx = Ctx(visit, now_ms, self.availability)
        for s in candidates:
            self.evaluations += 1
            if s.predicate(ctx)[0]:
                visit.hold_back(now_ms, s.name, why)

    def _hold_by_gate(self, visit: Visit, s: CompiledStrategy, ctx: Ctx, now_ms: int) -> None:
        """The conditions hold but a gate does not: record which gate held the visitor back."""
        if s.conditions is None or not s.conditions(ctx)[0]:
            return
        closed = next((name for name, gate in s.gates if not gate(ctx)[0]), None)
        if closed is not None:
            visit.hold_back(now_ms, s.name, closed)

    def _schedule(self, visit_id: str, name: str, due: int) -> None:
        key = (visit_id, name)
        if self._scheduled.get(key) == due:
            return
        self._scheduled[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), visit_id, name))

"""The dry run: recorded visits replayed through a strategy set on a virtual clock.

The engine's own code decides (``Engine`` with its index, conditions, limits and dues); only
the clock and the visitors' answers are stood in for. The clock is the events' server time,
and conditions that ripen with time fire at their exact due. An invitation the live engine
also made takes the answers the visitor really gave (its recorded transitions, shifted to the
replayed decision's time); an invitation it did not make is assumed unanswered (it times out).
Pure and synchronous: the caller reads the history and formats the result.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .. import constants as C
from ..attempts import Attempt, Origin, State, new_attempt_id
from ..strategy.conditions import Ctx
from ..strategy.engine import CompiledStrategy, Engine, StrategySet, blocked_by_limits
from ..strategy.experiment import arm_of
from ..visits.model import Event, Visit
from ..visits.registry import VisitRegistry

SWEEP_MS = C.VISIT_SWEEP_INTERVAL_S * 1000  # idle visits close as often as in the engine


class _NoHistory:
    def record(self, visit: Visit, events: list[Event]) -> None:
        return None

    def record_closed(self, visit: Visit) -> None:
        return None


class _NoFeed:
    """Agents' availability is not recorded: every group counts as available."""

    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    visit_id: str
    visitor: str
    strategy: str
    variant: str
    at: int  # virtual engine ms
    held_out: bool
    outranked: tuple[str, ...]  # strategies that matched too, lower in priority


@dataclass(slots=True)
class Replay:
    """Feed it recorded events in order (``run``); read ``decisions`` afterwards."""

    strategies: StrategySet
    live_attempts: Sequence[Attempt] = ()
    visit_timeout_s: float = C.VISIT_IDLE_TIMEOUT_S
    strict: bool = True
    decisions: list[Decision] = field(default_factory=list)
    events_replayed: int = 0
    engine: Engine = field(init=False)
    registry: VisitRegistry = field(init=False)
    _moves: list[tuple[int, int, Attempt, State]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _live: dict[tuple[str, str], list[Attempt]] = field(default_factory=dict)
    _others: list[Attempt] = field(default_factory=list)  # agents' and outside attempts
    _next_sweep: int = 0

    def __post_init__(self) -> None:
        self.engine = Engine(self.strategies, _NoFeed(), strict=self.strict)
        self.registry = VisitRegistry(_NoHistory(), self.visit_timeout_s)
        for a in sorted(self.live_attempts, key=lambda a: a.created_at):
            if a.origin is Origin.STRATEGY:
                self._live.setdefault((a.visit_id, a.strategy), []).append(a)
            else:
                self._others.append(a)
        self._others.reverse()  # popped from the end, oldest first

    def seed_ledger(self, earlier: Iterable[Attempt]) -> None:
        """Attempts before the replayed period: per-visitor limits and cool-downs read them."""
        for attempt in earlier:
            self.engine.ledger.add(attempt)

    def run(self, events: Iterable[Event]) -> None:
        """Replay events sorted by server time, deciding after each one: the history keeps
        their order, not the tracker's batches (50 ms windows), so this is the finest order
        that the live engine's decisions can be reproduced from."""
        for event in events:
            self._ingest([event])

    def finish(self, until_ms: int) -> None:
        """Let dues and answers up to the end of the period happen."""
        self._advance(until_ms)

    def _ingest(self, batch: list[Event]) -> None:
        now = batch[0].server_time
        if not self._next_sweep:
            self._next_sweep = now + SWEEP_MS
        self._advance(now)
        stamp = self.strategies.stamp
        for event in batch:
            title = event.data.get("title") if event.event_name == "PageEntered" else ""
            event.category = stamp(
                event.category, event.url, title if isinstance(title, str) else ""
            )
        fresh, _ = self.registry.ingest(batch)
        self.events_replayed += len(fresh)
        visit = self.registry.get(batch[0].visit_id)
        if visit is None or not fresh:
            return
        chosen = self.engine.on_events(visit, fresh, now)
        if chosen is not None:
            self._decide(visit, chosen, now)

    def _advance(self, until: int) -> None:
        """Everything timed before ``until``, in time order: dues, answers, outside attempts."""
        while True:
            due = self.engine.next_due
            move = self._moves[0][0] if self._moves else None
            other = self._others[-1].created_at if self._others else None
            sweep = self._next_sweep if self._next_sweep else None
            times = [t for t in (due, move, other, sweep) if t is not None and t <= until]
            if not times:
                return
            now = min(times)
            if now == move:
                _, _, attempt, state = heapq.heappop(self._moves)
                if attempt.can_move(state):
                    attempt.move(state, now)
            elif now == other:
                self._add_other(self._others.pop())
            elif now == due:
                for visit, chosen in self.engine.on_due(now, self.registry):
                    self._decide(visit, chosen, now)
            else:
                self.registry.close_idle(now)
                self._next_sweep = now + SWEEP_MS

    def _add_other(self, live: Attempt) -> None:
        visit = self.registry.get(live.visit_id)
        if visit is None:
            return
        copy = _copy(live, live.created_at)
        visit.attempts.append(copy)
        self.engine.ledger.add(copy)
        self._follow(copy, live)

    def _decide(self, visit: Visit, strategy: CompiledStrategy, now: int) -> None:
        assignment = arm_of(strategy, visit.global_visit_id)
        offer = assignment.offer
        page = visit.current_page
        attempt = Attempt(new_attempt_id(), visit.visit_id, visit.global_visit_id,
                          page.page_id if page else "", strategy.name, Origin.STRATEGY,
                          offer.invite, offer.media, dict(offer.params), offer.timeout_s, now,
                          variant=assignment.variant)  # fmt: skip
        outranked = self._outranked(visit, strategy, now)
        visit.attempts.append(attempt)
        self.engine.ledger.add(attempt)
        self.decisions.append(Decision(visit.visit_id, visit.global_visit_id, strategy.name,
                                       assignment.variant, now, assignment.held_out,
                                       outranked))  # fmt: skip
        if assignment.held_out:
            attempt.move(State.HELD_OUT, now, "control group")
            return
        same = self._live.get((visit.visit_id, strategy.name))
        if same:
            self._follow(attempt, same.pop(0))
        else:  # not made live: nobody answers it
            self._at(now, attempt, State.OFFERED)
            self._at(now + int(offer.timeout_s * 1000), attempt, State.TIMED_OUT)

    def _outranked(self, visit: Visit, chosen: CompiledStrategy, now: int) -> tuple[str, ...]:
        """The strategies ranked below the chosen one (priority, then name) that would have
        invited this visit now, had it not won."""
        ctx = Ctx(visit, now, _NoFeed())
        ledger = self.engine.ledger
        ranked = self.strategies.strategies  # highest priority first
        below = ranked[ranked.index(chosen) + 1 :]
        return tuple(
            s.name
            for s in below
            if not blocked_by_limits(s, visit, ledger, now) and s.predicate(ctx)[0]
        )

    def _follow(self, attempt: Attempt, live: Attempt) -> None:
        """Replay what the visitor did with the live attempt, from the replayed decision on."""
        shift = attempt.created_at - live.created_at
        for state, at, _ in live.transitions[1:]:
            self._at(at + shift, attempt, state)

    def _at(self, when: int, attempt: Attempt, state: State) -> None:
        heapq.heappush(self._moves, (when, next(self._seq), attempt, state))


def _copy(a: Attempt, created_at: int) -> Attempt:
    return Attempt(a.attempt_id, a.visit_id, a.global_visit_id, a.page_id, a.strategy, a.origin,
                   a.invite, a.media, dict(a.params), a.timeout_s, created_at,
                   variant=a.variant)  # fmt: skip


def day_of(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()

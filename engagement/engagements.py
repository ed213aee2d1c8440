"""Turning decisions into engagement attempts, and keeping their timers.

The strategy engine decides; this module records the attempt (in the visit, the visitor's
ledger and the history store), hands it to whatever offers it to the visitor, and expires it
when nobody acts in time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import constants as C
from .attempts import Attempt, Origin, State, new_attempt_id
from .experiments.goals import GoalWindows
from .experiments.model import Conversion
from .monitoring.ingest import now_ms
from .pacing.pacer import Pacer
from .strategy.engine import CompiledStrategy, Engine
from .strategy.experiment import arm_of
from .visits.model import Event, Visit
from .visits.registry import VisitRegistry

log = logging.getLogger("engagement.engagements")

TIMER_TICK_S = 0.25  # dues and deadlines are checked this often


def attempt_for(
    visit: Visit,
    strategy: str,
    origin: Origin,
    invite: str,
    media: str,
    params: dict[str, Any],
    timeout_s: float,
    now: int,
) -> Attempt:
    """A new attempt on the page the visitor is on now."""
    page = visit.current_page
    return Attempt(
        attempt_id=new_attempt_id(),
        visit_id=visit.visit_id,
        global_visit_id=visit.global_visit_id,
        page_id=page.page_id if page else "",
        strategy=strategy,
        origin=origin,
        invite=invite,
        media=media,
        params=params,
        timeout_s=timeout_s,
        created_at=now,
    )


class _NoConversions:
    def record_conversion(self, conversion: Conversion) -> None:
        return None


class AttemptStore(Protocol):
    def record_attempt(self, attempt: Attempt) -> None: ...


class AttemptOffer(Protocol):
    """Takes a new attempt to the visitor (the notification path)."""

    def offer(self, attempt: Attempt, visit: Visit) -> None: ...


class Engagements:
    def __init__(
        self,
        registry: VisitRegistry,
        engine: Engine,
        store: AttemptStore,
        offer_timeout_s: float = C.ENGAGEMENT_EXPIRATION_S,
        goals: GoalWindows | None = None,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.store = store
        self.offer_timeout_s = offer_timeout_s
        self.goals = goals if goals is not None else GoalWindows(_NoConversions())
        self.offers: list[AttemptOffer] = []
        self.by_id: dict[str, Attempt] = {}  # attempts still live, and recently ended ones
        self._deadlines: list[tuple[int, int, Attempt, State]] = []
        self._deadline_of: dict[str, int] = {}  # attempt -> seq of its current deadline
        self._seq = itertools.count()
        self.started_total = 0
        self.reached: Counter[str] = Counter()  # attempts that reached each state, for metrics
        self.ended_listeners: list[Callable[[Attempt], None]] = []
        self.announcers: list[Callable[[Attempt, Visit], None]] = []
        self.accepted_listeners: list[Callable[[Attempt], None]] = []
        self.pacer: Pacer | None = None  # strategies naming an agent group are paced by it
        self.paced_wait_s: float = C.PACED_WAIT_S

    # -- decisions --

    def on_events(self, events: list[Event]) -> None:
        """Ingest listener: evaluate strategies for every visit these events touched."""
        if not len(self.engine.strategies):
            return
        now = now_ms()
        by_visit: dict[str, list[Event]] = {}
        for event in events:
            by_visit.setdefault(event.visit_id, []).append(event)
        for visit_id, visit_events in by_visit.items():
            visit = self.registry.get(visit_id)
            if visit is None:
                continue
            chosen = self.engine.on_events(visit, visit_events, now)
            if chosen is not None:
                self.start(visit, chosen, now)

    def tick(self, now: int) -> None:
        """Strategies whose conditions ripened with time, then attempts past a deadline."""
        for visit, chosen in self.engine.on_due(now, self.registry):
            self.start(visit, chosen, now)
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, seq, attempt, expected = heapq.heappop(heap)
            if self._deadline_of.get(attempt.attempt_id) != seq:
                continue  # replaced by a later deadline
            del self._deadline_of[attempt.attempt_id]
            if attempt.state is expected and attempt.can_move(State.TIMED_OUT):
                self.move(attempt, State.TIMED_OUT, now, f"no answer while {expected.value}")

    def start(self, visit: Visit, strategy: CompiledStrategy, now: int) -> Attempt:
        # Experiments decide first: the control group is recorded and shown nothing, and a
        # variant's offer replaces the strategy's (engagement.strategy.experiment).
        assignment = arm_of(strategy, visit.global_visit_id)
        offer = assignment.offer
        attempt = attempt_for(
            visit,
            strategy.name,
            Origin.STRATEGY,
            offer.invite,
            offer.media,
            dict(offer.params),
            offer.timeout_s,
            now,
        )
        attempt.variant = assignment.variant
        if strategy.experiment is not None and strategy.experiment.goal is not None:
            self.goals.open(attempt, strategy.experiment.goal)
        if assignment.held_out:
            self.hold_out(visit, attempt, now)
            return attempt
        external = strategy.decide == "external"
        if not external and self.pacer is not None and strategy.availability is not None:
            self.add(visit, attempt, offer=False)
            self.pace(attempt, strategy, now)
            return attempt
        self.add(visit, attempt, offer=not external)
        if external:  # an outside system answers engage / noengage before the expiry
            for announce in self.announcers:
                announce(attempt, visit)
        return attempt

    def hold_out(self, visit: Visit, attempt: Attempt, now: int) -> None:
        """Record a control-group attempt: it counts for limits and goals, and is never offered
        (so it takes no pacing capacity and no timer)."""
        attempt.move(State.HELD_OUT, now, "control group")
        visit.attempts.append(attempt)
        self.registry.mark_changed(visit)
        self.by_id[attempt.attempt_id] = attempt
        self.engine.ledger.add(attempt)
        self.store.record_attempt(attempt)
        self.started_total += 1
        self.reached[State.DETECTED.value] += 1
        self.reached[State.HELD_OUT.value] += 1
        log.info(
            "attempt %s for visit %s by %s held out",
            attempt.attempt_id,
            visit.visit_id,
            attempt.strategy,
            extra={"visitID": visit.visit_id, "attemptID": attempt.attempt_id},
        )

    def add(self, visit: Visit, attempt: Attempt, offer: bool = True) -> Attempt:
        """Record a new attempt and, unless an outside system decides, offer it."""
        visit.attempts.append(attempt)
        self.registry.mark_changed(visit)
        self.by_id[attempt.attempt_id] = attempt
        self.engine.ledger.add(attempt)
        self.store.record_attempt(attempt)
        self.started_total += 1
        self.reached[attempt.state.value] += 1
        log.info(
            "attempt %s for visit %s by %s (%s)",
            attempt.attempt_id,
            visit.visit_id,
            attempt.strategy,
            attempt.media,
            extra={"visitID": visit.visit_id, "attemptID": attempt.attempt_id},
        )
        self.expect(attempt, State.DETECTED, attempt.created_at + int(self.offer_timeout_s * 1000))
        if offer:
            self.offer(attempt, visit)
        return attempt

    def offer(self, attempt: Attempt, visit: Visit) -> None:
        for o in self.offers:
            o.offer(attempt, visit)

    # -- pacing (docs/pacing.md) --

    def pace(self, attempt: Attempt, strategy: CompiledStrategy, now: int) -> None:
        """Invite now if the strategy's agent group has room; otherwise the attempt waits in
        the group's line, recorded as paced, until room comes or ``paced_wait_s`` passes."""
        assert self.pacer is not None
        assert strategy.availability is not None
        av = strategy.availability
        released = self.pacer.admit(
            attempt, av.group, strategy.priority, now, av.min_ready, av.max_wait_s
        )
        if attempt not in released:
            waiting = self.pacer.waiting(av.group)
            self.move(
                attempt, State.PACED, now, f"group {av.group} has no room ({waiting} in line)"
            )
            self.expect(attempt, State.PACED, now + int(self.paced_wait_s * 1000))
        self.offer_released(released, now)

    def pace_lines(self, now: int) -> int:
        """Invite whoever the groups' lines let through now (the scheduled job)."""
        if self.pacer is None:
            return 0
        released = self.pacer.refresh(now)
        self.offer_released(released, now)
        return len(released)

    def offer_released(self, attempts: list[Attempt], now: int) -> None:
        for attempt in attempts:
            visit = self.registry.get(attempt.visit_id)
            if visit is None:
                self.move(attempt, State.TIMED_OUT, now, "the visit ended while paced")
            else:
                self.offer(attempt, visit)

    # -- lifecycle --

    def expect(self, attempt: Attempt, state: State, deadline_ms: int) -> None:
        """Time the attempt out if it is still in ``state`` at ``deadline_ms`` (this replaces
        any earlier deadline of the attempt)."""
        seq = next(self._seq)
        self._deadline_of[attempt.attempt_id] = seq
        heapq.heappush(self._deadlines, (deadline_ms, seq, attempt, state))

    def move(self, attempt: Attempt, state: State, now: int, reason: str = "") -> None:
        attempt.move(state, now, reason)
        visit = self.registry.get(attempt.visit_id)
        if visit is not None:
            self.registry.mark_changed(visit)  # listings show the engagement state
        self.reached[state.value] += 1
        self.store.record_attempt(attempt)
        if state is State.ACCEPTED:
            for accepted in self.accepted_listeners:
                accepted(attempt)
        if not attempt.live:
            self._deadline_of.pop(attempt.attempt_id, None)
            for listener in self.ended_listeners:
                listener(attempt)
        log.info(
            "attempt %s %s%s",
            attempt.attempt_id,
            state.value,
            f" ({reason})" if reason else "",
            extra={"visitID": attempt.visit_id, "attemptID": attempt.attempt_id},
        )

    def find(self, attempt_id: str, visit_id: str) -> Attempt | None:
        """An attempt of this visit (another visit cannot touch it)."""
        attempt = self.by_id.get(attempt_id)
        return attempt if attempt is not None and attempt.visit_id == visit_id else None

    def load_ledger(self, attempts: Iterable[Attempt]) -> None:
        for attempt in attempts:
            self.engine.ledger.add(attempt)
            self.by_id[attempt.attempt_id] = attempt

    def forget_old(self, now: int) -> None:
        """Drop ended attempts from memory once no limit can need them."""
        cutoff = now - C.LEDGER_DAYS * 86_400_000
        self.engine.ledger.forget_before(cutoff)
        stale_before = now - int(C.PUSH_MESSAGE_TTL_S * 1000)
        for attempt_id, attempt in list(self.by_id.items()):
            if not attempt.live and attempt.transitions[-1][1] < stale_before:
                del self.by_id[attempt_id]

    async def run_timers(self) -> None:
        while True:
            await asyncio.sleep(TIMER_TICK_S)
            try:
                self.tick(now_ms())
            except Exception:
                log.exception("engagement timers failed")

"""A discrete-event simulation of a contact centre, driving the engine's real pacing code.

On a virtual clock: qualifying visitors arrive (Poisson), are paced by the real ``Pacer`` (or by
today's gate, the real ``availability_pred``: invite while ``agentsReady >= min_ready``), answer
after a while (accepting with a fixed probability), then wait for one of N agents, each
carrying a few chats with a log-normal handle time, and abandon when they wait longer than their
patience. Reactive chats ("Chat now") arrive too and share the agents. The availability feed
reports the agents every few seconds, as a real feed would. Seeded: the same inputs give the
same figures.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ..attempts import Attempt, Origin, State
from ..availability import AvailabilityBoard, GroupState
from ..strategy.conditions import Ctx, availability_pred
from ..strategy.schema import Availability
from .counters import LocalCounters
from .model import Algorithm, GroupConfig, Target
from .pacer import Pacer, PacingConfig

GROUP = "sim"
GATE_RECHECK_S = 5.0  # the engine re-checks a visit waiting for an agent this often
NO_ANSWER_S = 30.0  # the invitation closes by itself (the offer's timeout_s)


@dataclass(frozen=True, slots=True)
class Scenario:
    agents: int
    chats_per_agent: int = 2
    handle_time_s: float = 240.0  # mean; log-normal
    handle_sigma: float = 0.5
    acceptance: float = 0.3
    answer_time_s: float = 8.0  # mean time to accept or decline; exponential
    patience_s: float = 60.0  # mean time an accepted visitor waits for an agent; exponential
    presence_s: float = 120.0  # mean time a qualified visitor stays invitable; exponential
    demand: float = 1.5  # qualifying visitors' acceptances per agent slot's capacity
    reactive_share: float = 0.2  # reactive chats, as a share of the agents' capacity
    feed_period_s: float = 5.0
    duration_s: float = 4 * 3600.0
    warmup_s: float = 600.0
    seed: int = 1

    @property
    def slots(self) -> int:
        return self.agents * self.chats_per_agent

    @property
    def capacity_per_s(self) -> float:
        return self.slots / self.handle_time_s


@dataclass(frozen=True, slots=True)
class Policy:
    """Pacing with a group configuration, or today's gate with ``min_ready``."""

    name: str
    config: GroupConfig | None = None
    min_ready: int = 1


@dataclass(slots=True)
class Result:
    scenario: Scenario
    policy: Policy
    invitations: int = 0
    accepted: int = 0
    abandoned: int = 0
    reactive: int = 0
    reactive_abandoned: int = 0
    busy_slot_s: float = 0.0
    measured_s: float = 0.0
    series: list[tuple[float, float, float]] = field(default_factory=list)  # t, busy, invited

    @property
    def abandonment(self) -> float:
        """Of the proactive interactions (the ones pacing creates)."""
        return self.abandoned / self.accepted if self.accepted else 0.0

    @property
    def reactive_abandonment(self) -> float:
        return self.reactive_abandoned / self.reactive if self.reactive else 0.0

    @property
    def occupancy(self) -> float:
        return self.busy_slot_s / (self.measured_s * self.scenario.slots)

    def row(self) -> dict[str, Any]:
        return {
            "agents": self.scenario.agents,
            "policy": self.policy.name,
            "invitations": self.invitations,
            "accepted": self.accepted,
            "abandonmentPct": round(100 * self.abandonment, 2),
            "reactiveAbandonmentPct": round(100 * self.reactive_abandonment, 2),
            "occupancyPct": round(100 * self.occupancy, 1),
        }


class _Visitor:
    __slots__ = ("accepts", "answer_s", "attempt", "patience_s", "presence_s", "proactive")

    def __init__(self, attempt: Attempt | None, rng: random.Random, sc: Scenario) -> None:
        self.attempt = attempt
        self.proactive = attempt is not None
        self.accepts = rng.random() < sc.acceptance
        self.answer_s = min(rng.expovariate(1 / sc.answer_time_s), NO_ANSWER_S)
        self.patience_s = rng.expovariate(1 / sc.patience_s)
        self.presence_s = rng.expovariate(1 / sc.presence_s)


class Simulation:
    def __init__(self, sc: Scenario, policy: Policy) -> None:
        self.sc, self.policy = sc, policy
        self.rng = random.Random(sc.seed)
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.board = AvailabilityBoard()
        config = PacingConfig(groups={GROUP: policy.config}) if policy.config else PacingConfig()
        self.pacer = Pacer(config, self.board, LocalCounters())
        self.gate = availability_pred(Availability(group=GROUP, min_ready=policy.min_ready))
        self.in_service = 0
        self.queue: deque[tuple[_Visitor, float]] = deque()  # waiting for an agent, since
        self.waiting_gate: list[_Visitor] = []
        self.result = Result(sc, policy)
        self._ids = itertools.count()
        self._visitors: dict[str, _Visitor] = {}

    # -- the clock --

    def at(self, delay_s: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay_s, next(self._seq), action))

    @property
    def now_ms(self) -> int:
        return int(self.now * 1000)

    def run(self) -> Result:
        sc = self.sc
        proactive_rate = sc.demand * sc.capacity_per_s / sc.acceptance
        self._poisson(proactive_rate, self._qualify)
        self._poisson(sc.reactive_share * sc.capacity_per_s, self._reactive)
        self._every(sc.feed_period_s, self._report)
        if self.policy.config is not None:
            self._every(self.policy.config.refresh_period_s, self._refresh)
        else:
            self._every(GATE_RECHECK_S, self._recheck_gate)
        self._every(60.0, self._sample)
        self._report()
        last = 0.0
        while self._events and self._events[0][0] <= sc.duration_s:
            t, _, action = heapq.heappop(self._events)
            if t > sc.warmup_s:
                self.result.busy_slot_s += self.in_service * (t - max(last, sc.warmup_s))
            last, self.now = t, t
            action()
        self.result.busy_slot_s += self.in_service * (sc.duration_s - max(last, sc.warmup_s))
        self.result.measured_s = sc.duration_s - sc.warmup_s
        return self.result

    def _poisson(self, rate_per_s: float, action: Callable[[], None]) -> None:
        if rate_per_s <= 0:
            return

        def arrive() -> None:
            action()
            self.at(self.rng.expovariate(rate_per_s), arrive)

        self.at(self.rng.expovariate(rate_per_s), arrive)

    def _every(self, period_s: float, action: Callable[[], None]) -> None:
        def tick() -> None:
            action()
            self.at(period_s, tick)

        self.at(period_s, tick)

    @property
    def measuring(self) -> bool:
        return self.now > self.sc.warmup_s

    # -- the feed --

    def _report(self) -> None:
        sc = self.sc
        full = max(0, self.in_service - sc.agents * (sc.chats_per_agent - 1))
        self.board.report(
            GROUP,
            GroupState(
                agents_ready=sc.agents - full, estimated_wait_s=0.0, updated_at=self.now_ms,
                agents_busy=full, chats_per_agent=sc.chats_per_agent, in_progress=self.in_service,
                queued=len(self.queue), avg_handle_time_s=sc.handle_time_s,
            ),
        )  # fmt: skip

    def _sample(self) -> None:
        self.result.series.append(
            (self.now, self.in_service / self.sc.slots, float(self.result.invitations))
        )

    # -- visitors --

    def _qualify(self) -> None:
        attempt = Attempt(
            attempt_id=f"A{next(self._ids)}", visit_id="", global_visit_id="", page_id="",
            strategy="sim", origin=Origin.STRATEGY, invite="chat.html", media="chat",
            params={}, timeout_s=NO_ANSWER_S, created_at=self.now_ms,
        )  # fmt: skip
        visitor = _Visitor(attempt, self.rng, self.sc)
        if self.policy.config is None:
            self.waiting_gate.append(visitor)
            self.at(visitor.presence_s, lambda: self._leave(visitor))
            self._recheck_gate()
            return
        self._visitors[attempt.attempt_id] = visitor
        for released in self.pacer.admit(attempt, GROUP, 0, self.now_ms):
            self._invite(released)
        if attempt.state is State.DETECTED:
            attempt.move(State.PACED, self.now_ms)
            self.at(visitor.presence_s, lambda: self._leave(visitor))

    def _leave(self, visitor: _Visitor) -> None:
        a = visitor.attempt
        if a is not None and a.state in (State.PACED, State.DETECTED):
            a.move(State.TIMED_OUT, self.now_ms, "left")
        if visitor in self.waiting_gate:
            self.waiting_gate.remove(visitor)

    def _refresh(self) -> None:
        for attempt in self.pacer.refresh(self.now_ms):
            self._invite(attempt)

    def _recheck_gate(self) -> None:
        ctx = Ctx(cast(Any, None), self.now_ms, _BoardView(self.board))
        if self.waiting_gate and self.gate(ctx)[0]:
            waiting, self.waiting_gate = self.waiting_gate, []
            for visitor in waiting:
                assert visitor.attempt is not None
                self._visitors[visitor.attempt.attempt_id] = visitor
                self._invite(visitor.attempt)

    def _invite(self, attempt: Attempt) -> None:
        visitor = self._visitors[attempt.attempt_id]
        attempt.move(State.OFFERED, self.now_ms)
        if self.measuring:
            self.result.invitations += 1
        self.at(visitor.answer_s, lambda: self._answer(visitor))

    def _answer(self, visitor: _Visitor) -> None:
        a = visitor.attempt
        assert a is not None
        if visitor.answer_s >= NO_ANSWER_S:
            a.move(State.TIMED_OUT, self.now_ms)
        elif not visitor.accepts:
            a.move(State.DECLINED, self.now_ms)
        else:
            a.move(State.ACCEPTED, self.now_ms)
            a.move(State.LAUNCHED, self.now_ms)  # handed to the contact centre at once
            if self.measuring:
                self.result.accepted += 1
            self._arrive(visitor)
        self._visitors.pop(a.attempt_id, None)

    def _reactive(self) -> None:
        if self.measuring:
            self.result.reactive += 1
        self._arrive(_Visitor(None, self.rng, self.sc))

    # -- agents --

    def _arrive(self, visitor: _Visitor) -> None:
        if self.in_service < self.sc.slots:
            self._serve()
            return
        self.queue.append((visitor, self.now))
        self.at(visitor.patience_s, lambda: self._abandon(visitor))

    def _abandon(self, visitor: _Visitor) -> None:
        for i, (waiting, _) in enumerate(self.queue):
            if waiting is visitor:
                del self.queue[i]
                if self.measuring:
                    if visitor.proactive:
                        self.result.abandoned += 1
                    else:
                        self.result.reactive_abandoned += 1
                return

    def _serve(self) -> None:
        self.in_service += 1
        mu = math.log(self.sc.handle_time_s) - self.sc.handle_sigma**2 / 2
        self.at(self.rng.lognormvariate(mu, self.sc.handle_sigma), self._finish)

    def _finish(self) -> None:
        self.in_service -= 1
        if self.queue:
            self.queue.popleft()
            self._serve()


class _BoardView:
    def __init__(self, board: AvailabilityBoard) -> None:
        self.board = board

    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        return self.board.agents(group, now_ms)


def simulate(sc: Scenario, policy: Policy) -> Result:
    return Simulation(sc, policy).run()


def policies(goal_abandon_pct: float = 3.0, goal_busy_pct: float = 80.0) -> list[Policy]:
    """Every algorithm with both targets."""
    found = []
    for algorithm in Algorithm:
        ratio = 0.8 if algorithm.dual else 1.0
        for target, goal in (
            (Target.ABANDONEMENT_RATE, goal_abandon_pct),
            (Target.BUSY_FACTOR, goal_busy_pct),
        ):
            name = f"{algorithm.value} {target.value} {goal:g}%"
            found.append(Policy(name, GroupConfig(algorithm, target, goal, proactive_ratio=ratio)))
    return found

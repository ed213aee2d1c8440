"""The pacer: which qualified visitors of a group are invited now, and who waits in line.

A strategy that names an agent group (``availability: {group: ...}``) is paced by it. Every
attempt it decides enters the group's line; the line is released, highest priority and longest
waiting first, as far as the group's algorithm allows (algorithms.py). The line is looked at
again on every new attempt and every ``refreshPeriod`` (a scheduled job), so an agent freeing up
brings the next visitor an invitation with no event from the browser.

The pacer follows the attempts it released by reading their state (it changes nothing), and
tells the shared counters when they are answered or connected.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from ..attempts import Attempt, State
from ..availability import AvailabilityBoard, Freshness, GroupState, WhenStale
from . import algorithms as alg
from .counters import ANY_STRATEGY, PacingCounters
from .model import Channel, GroupConfig, Plan

log = logging.getLogger(__name__)

WAITING = frozenset({State.DETECTED, State.PACED})
IN_FLIGHT = frozenset({State.DETECTED, State.PACED, State.OFFERED, State.SHOWN})
CAS_RETRIES = 5  # another node changed the group meanwhile: read again, this many times


@dataclass(frozen=True, slots=True)
class PacingConfig:
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    default: GroupConfig = field(default_factory=GroupConfig)

    def of(self, group: str) -> GroupConfig:
        return self.groups.get(group) or self.default

    def tick_s(self, most_s: float = 1.0) -> float:
        """How often the lines must be looked at for every group's refreshPeriod to hold."""
        periods = [g.refresh_period_s for g in self.groups.values()]
        return min([most_s, self.default.refresh_period_s, *periods])


@dataclass(order=True, slots=True)
class _Entry:
    key: tuple[int, int, int]  # -priority, waiting since (ms), sequence
    attempt: Attempt = field(compare=False)
    min_ready: int | None = field(compare=False, default=None)
    max_wait_s: float | None = field(compare=False, default=None)


@dataclass(slots=True)
class _Tracked:
    group: str
    attempt: Attempt
    released_at: int
    answered: bool = False


class Pacer:
    def __init__(
        self, config: PacingConfig, board: AvailabilityBoard, counters: PacingCounters
    ) -> None:
        self.config = config
        self.board = board
        self.counters = counters
        self._lines: dict[str, list[_Entry]] = {}
        self._tracked: dict[str, _Tracked] = {}
        self._refreshed: dict[str, int] = {}
        self._seq = itertools.count()

    # -- deciding --

    def admit(
        self,
        attempt: Attempt,
        group: str,
        priority: int,
        now_ms: int,
        min_ready: int | None = None,
        max_wait_s: float | None = None,
    ) -> list[Attempt]:
        """Put a new attempt in its group's line; the attempts to invite now (it among them,
        or not: then it waits, and the caller records it as paced)."""
        self._queue(attempt, group, priority, now_ms, min_ready, max_wait_s)
        return self.release(group, now_ms)

    def _queue(
        self,
        attempt: Attempt,
        group: str,
        priority: int,
        since_ms: int,
        min_ready: int | None,
        max_wait_s: float | None,
    ) -> None:
        """In the group's line: by priority, then by how long it has waited."""
        entry = _Entry((-priority, since_ms, next(self._seq)), attempt, min_ready, max_wait_s)
        heapq.heappush(self._lines.setdefault(group, []), entry)

    def refresh(self, now_ms: int) -> list[Attempt]:
        """Release every line whose refresh period has passed (the scheduled job)."""
        released: list[Attempt] = []
        for group in list(self._lines):
            period_ms = self.config.of(group).refresh_period_s * 1000
            if now_ms - self._refreshed.get(group, 0) >= period_ms:
                released += self.release(group, now_ms)
        self._sync(now_ms)
        return released

    def release(self, group: str, now_ms: int) -> list[Attempt]:
        self._refreshed[group] = now_ms
        self._sync(now_ms)
        line = self._lines.get(group, [])
        cfg = self.config.of(group)
        report = self.board.fresh(group, now_ms)
        unlimited = report is None and self.board.when_stale is WhenStale.OPEN
        released: list[Attempt] = []
        held: list[_Entry] = []
        while line:
            entry = line[0]
            if entry.attempt.state not in WAITING:  # expired or cancelled while waiting
                heapq.heappop(line)
                continue
            if not unlimited and (report is None or not self._invite(group, cfg, report, entry)):
                if report is not None and _gated(entry, report):
                    held.append(heapq.heappop(line))  # its own gate, not the group, holds it
                    continue
                break
            heapq.heappop(line)
            released.append(entry.attempt)
            self._tracked[entry.attempt.attempt_id] = _Tracked(group, entry.attempt, now_ms)
        for entry in held:
            heapq.heappush(line, entry)
        if not line:
            self._lines.pop(group, None)
        if released:
            log.info("pacing %s: %d invited, %d waiting", group, len(released), len(line))
        return released

    def _invite(self, group: str, cfg: GroupConfig, report: GroupState, entry: _Entry) -> bool:
        if _gated(entry, report):
            return False
        cap = report.capacity(cfg)
        p = self.counters.acceptance(group, entry.attempt.strategy).mean
        answer_s = self.counters.answer_time(group).mean
        released = alg.releases(cfg, cap, answer_s)
        for _ in range(CAS_RETRIES):
            pending = self.counters.pending(group)
            x = alg.room(cfg, cap, pending, released)
            accepts = alg.accepts_of(cfg, pending, x)
            accepts.add(p)
            if not alg.fits(cfg, accepts, x):
                return False
            a = entry.attempt
            if self.counters.invite(group, a.attempt_id, p, pending.version, a.global_visit_id):
                return True
        return False

    def forget(self, attempt_ids: Collection[str]) -> int:
        """A visitor's erasure: their attempts leave the lines, and the invitations followed
        are let go now, the counters told as for any that ended (an accepted one would count
        against its group for ever: its attempt, forgotten by the owner, moves no more)."""
        gone = 0
        for group, line in list(self._lines.items()):
            kept = [e for e in line if e.attempt.attempt_id not in attempt_ids]
            gone += len(line) - len(kept)
            heapq.heapify(kept)
            if kept:
                self._lines[group] = kept
            else:
                del self._lines[group]
        for attempt_id in [i for i in self._tracked if i in attempt_ids]:
            t = self._tracked.pop(attempt_id)
            if not t.answered:
                a = t.attempt
                outcome = _answer(a, a.at(State.OFFERED) or t.released_at) or (False, None)
                self.counters.answered(t.group, attempt_id, a.strategy, *outcome)
            self.counters.connected(t.group, attempt_id)
            gone += 1
        return gone

    def resume(
        self,
        attempt: Attempt,
        group: str,
        priority: int,
        now_ms: int,
        min_ready: int | None = None,
        max_wait_s: float | None = None,
    ) -> None:
        """After a restart of a node whose lines and counters were in memory: a paced attempt
        takes its place in the line again (waiting since it was detected), and an invitation
        not yet answered counts in flight again (its answer is learnt when it comes)."""
        if attempt.state in WAITING:
            self._queue(attempt, group, priority, attempt.created_at, min_ready, max_wait_s)
        elif attempt.state in IN_FLIGHT and attempt.attempt_id not in self._tracked:
            p = self.counters.acceptance(group, attempt.strategy).mean
            for _ in range(CAS_RETRIES):
                version = self.counters.pending(group).version
                if self.counters.invite(
                    group, attempt.attempt_id, p, version, attempt.global_visit_id
                ):
                    break
            offered_at = attempt.at(State.OFFERED) or now_ms
            self._tracked[attempt.attempt_id] = _Tracked(group, attempt, offered_at)

    # -- following what was released --

    def follow(self, group: str, attempt: Attempt, answered: bool) -> None:
        """Follow an invitation another node released (that node stopped following it: see
        orphans.py) as if this node had: its answer and connection are counted as they come."""
        if attempt.attempt_id not in self._tracked:
            offered_at = attempt.at(State.OFFERED) or attempt.created_at
            self._tracked[attempt.attempt_id] = _Tracked(group, attempt, offered_at, answered)

    def followed(self) -> set[str]:
        """The attempt IDs of the invitations this node follows."""
        return set(self._tracked)

    def learn_from(self, attempts: Iterable[Attempt], group_of: Callable[[str], str | None]) -> int:
        """Start from what the recorded attempts teach (oldest first): each invitation that
        was answered, by the group its strategy names now. How many were read."""
        read = 0
        for a in sorted(attempts, key=lambda a: a.created_at):
            group = group_of(a.strategy)
            offered_at = a.at(State.OFFERED)
            if group is None or offered_at is None:
                continue
            outcome = _answer(a, offered_at)
            if outcome is not None:
                self.counters.learn(group, a.strategy, *outcome)
                read += 1
        return read

    def _sync(self, now_ms: int) -> None:
        """Tell the counters which released invitations were answered or connected."""
        for attempt_id, t in list(self._tracked.items()):
            a = t.attempt
            if a.state in IN_FLIGHT:
                continue
            if not t.answered:
                t.answered = True
                accepted, answer_s = _answer(a, a.at(State.OFFERED) or t.released_at) or (
                    False,
                    None,
                )
                self.counters.answered(t.group, attempt_id, a.strategy, accepted, answer_s)
                if not accepted:
                    del self._tracked[attempt_id]
                    continue
            if a.state is not State.ACCEPTED and self._seen_by_feed(t, now_ms):
                self.counters.connected(t.group, attempt_id)
                del self._tracked[attempt_id]

    def _seen_by_feed(self, t: _Tracked, now_ms: int) -> bool:
        """A launched interaction stays counted until a feed report newer than its launch
        counts it (or the report goes stale): otherwise it would count nowhere meanwhile."""
        states = [state for state, _, _ in t.attempt.transitions]
        after = states.index(State.ACCEPTED) + 1  # the step that left `accepted` (launched...)
        left_at = t.attempt.transitions[min(after, len(states) - 1)][1]
        report = self.board.groups.get(t.group)
        if report is not None and report.updated_at >= left_at:
            return True
        return now_ms - left_at > self.board.stale_after_s * 1000

    def following(self) -> set[str]:
        """The visitors (globalVisitIDs) of the invitations this node follows: with several
        nodes, their answers may reach another node, so their attempts are read again before
        each look at the lines."""
        return {t.attempt.global_visit_id for t in self._tracked.values()}

    # -- reading --

    def waiting(self, group: str) -> int:
        return sum(1 for e in self._lines.get(group, ()) if e.attempt.state in WAITING)

    def groups(self) -> list[str]:
        names = set(self.config.groups) | set(self.board.groups) | set(self._lines)
        return sorted(names)

    def plan(self, group: str, now_ms: int) -> Plan:
        self._sync(now_ms)
        cfg = self.config.of(group)
        freshness = self.board.freshness(group, now_ms)
        pending = self.counters.pending(group)
        p = self.counters.acceptance(group, ANY_STRATEGY).mean
        answer_s = self.counters.answer_time(group).mean
        report = self.board.fresh(group, now_ms)
        open_ = report is None and self.board.when_stale is WhenStale.OPEN
        if report is None:
            reactive = 1.0 if open_ else 0.0
            allowed = alg.MAX_ALLOWED_AT_ONCE if open_ else 0
            return Plan(
                group, cfg, freshness.value, open_, None, pending, 0.0, 0.0, p, answer_s,
                allowed, float(allowed), reactive, self.waiting(group),
            )  # fmt: skip
        cap = report.capacity(cfg)
        released = alg.releases(cfg, cap, answer_s)
        x = alg.room(cfg, cap, pending, released)
        allowed = alg.allowed_now(cfg, pending, x, p)
        return Plan(
            group, cfg, Freshness.FRESH.value, False, cap, pending, round(released, 3),
            round(x, 3), round(p, 4), round(answer_s, 2), allowed,
            alg.per_minute(cfg, cap, allowed, p),
            alg.reactive_state(cap, pending, released, not cfg.algorithm.predictive),
            self.waiting(group),
        )  # fmt: skip

    def reactive_state(self, channel: Channel, groups: Iterable[str], now_ms: int) -> float:
        """GWE's reactiveState: the probability that one more reactive interaction should be
        allowed; over several groups, that at least one of them can take it."""
        names = list(groups) or [g for g in self.groups() if self.config.of(g).channel is channel]
        none_can = 1.0
        for group in names:
            if self.config.of(group).channel is not channel:
                continue
            none_can *= 1.0 - self.plan(group, now_ms).reactive_state
        return round(1.0 - none_can, 4)


class _Paced:
    """The strategy engine's view of availability when pacing is on: the condition holds, and
    the pacer decides after the strategy matched (so held-back visitors are recorded)."""

    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        return None


PACED = _Paced()


def _answer(a: Attempt, offered_at: int) -> tuple[bool, float | None] | None:
    """(accepted, seconds to answer) of an invitation no longer waiting for its answer; the
    seconds are None when it expired or failed (no answer time to learn); None if unanswered."""
    accepted_at = a.at(State.ACCEPTED)
    if accepted_at is not None:
        return True, (accepted_at - offered_at) / 1000
    if a.state in IN_FLIGHT:
        return None
    if a.state in (State.DECLINED, State.CLOSED):
        return False, (a.transitions[-1][1] - offered_at) / 1000
    return False, None


def _gated(entry: _Entry, report: GroupState) -> bool:
    """The strategy's own availability limits (min_ready, max_wait_s), if it set them."""
    if entry.min_ready is not None and report.agents_ready < entry.min_ready:
        return True
    return entry.max_wait_s is not None and report.estimated_wait_s > entry.max_wait_s

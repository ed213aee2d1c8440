"""Pacing's shared state: invitations in flight per group and what answers taught.

Behind a Protocol so that several nodes pace one group together: the in-process one is below,
``RedisCounters`` (redis_counters.py) shares them through Redis with a lag of one pacing tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .model import PRIOR_ACCEPTANCE, PRIOR_ANSWER_TIME_S, Estimate, Pending

PRIOR_WEIGHT = 20.0  # the prior counts as this many answers: it leads until real ones outweigh it
DECAY = 0.99  # each new answer weighs old ones down by this: a memory of about 100 answers
ANY_STRATEGY = ""  # the group's own estimate, across strategies


class PacingCounters(Protocol):
    def pending(self, group: str) -> Pending:
        """The group's unanswered invitations and accepted-not-connected count, with a version."""

    def invite(
        self, group: str, attempt_id: str, p_accept: float, version: int, visitor: str = ""
    ) -> bool:
        """Count one more invitation in flight, unless the group changed since ``version`` was
        read (another node invited or an answer came): then nothing changes, re-plan.
        ``visitor`` (the attempt's globalVisitID) lets other nodes find the attempt."""

    def answered(
        self, group: str, attempt_id: str, strategy: str, accepted: bool, answer_s: float | None
    ) -> None:
        """The visitor answered (``answer_s``: seconds from invitation, None if it expired).
        Learns from it; an acceptance stays in flight until ``connected``."""

    def connected(self, group: str, attempt_id: str) -> None:
        """An accepted invitation reached the media (or ended): no longer in flight."""

    def learn(self, group: str, strategy: str, accepted: bool, answer_s: float | None) -> None:
        """One answer for the estimates only (recorded attempts read at start)."""

    def acceptance(self, group: str, strategy: str) -> Estimate: ...

    def answer_time(self, group: str) -> Estimate: ...


@dataclass(slots=True)
class _Smoothed:
    """An exponentially decayed mean with a prior."""

    prior: float
    total: float = 0.0
    weight: float = 0.0

    def add(self, value: float) -> None:
        self.total = self.total * DECAY + value
        self.weight = self.weight * DECAY + 1.0

    def estimate(self) -> Estimate:
        mean = (self.total + self.prior * PRIOR_WEIGHT) / (self.weight + PRIOR_WEIGHT)
        return Estimate(mean, self.weight)


@dataclass(slots=True)
class _Group:
    invited: dict[str, float]
    accepted: set[str]
    version: int = 0


class LocalCounters:
    """One process's counters: every node of a single-node engine shares them trivially."""

    def __init__(
        self,
        prior_acceptance: float = PRIOR_ACCEPTANCE,
        prior_answer_s: float = PRIOR_ANSWER_TIME_S,
    ) -> None:
        self.prior_acceptance = prior_acceptance
        self.prior_answer_s = prior_answer_s
        self._groups: dict[str, _Group] = {}
        self._acceptance: dict[tuple[str, str], _Smoothed] = {}
        self._answer: dict[str, _Smoothed] = {}

    def _group(self, group: str) -> _Group:
        found = self._groups.get(group)
        if found is None:
            found = self._groups[group] = _Group({}, set())
        return found

    def pending(self, group: str) -> Pending:
        g = self._group(group)
        return Pending(tuple(g.invited.values()), len(g.accepted), g.version)

    def invite(
        self, group: str, attempt_id: str, p_accept: float, version: int, visitor: str = ""
    ) -> bool:
        g = self._group(group)
        if g.version != version:
            return False
        g.invited[attempt_id] = p_accept
        g.version += 1
        return True

    def answered(
        self, group: str, attempt_id: str, strategy: str, accepted: bool, answer_s: float | None
    ) -> None:
        g = self._group(group)
        if g.invited.pop(attempt_id, None) is None:
            return
        if accepted:
            g.accepted.add(attempt_id)
        g.version += 1
        self.learn(group, strategy, accepted, answer_s)

    def learn(self, group: str, strategy: str, accepted: bool, answer_s: float | None) -> None:
        for key in ((group, strategy), (group, ANY_STRATEGY)):
            self._rate(key).add(1.0 if accepted else 0.0)
        if answer_s is not None:
            self._time(group).add(answer_s)

    def connected(self, group: str, attempt_id: str) -> None:
        g = self._group(group)
        if attempt_id in g.accepted:
            g.accepted.discard(attempt_id)
            g.version += 1

    def acceptance(self, group: str, strategy: str) -> Estimate:
        return self._rate((group, strategy)).estimate()

    def answer_time(self, group: str) -> Estimate:
        return self._time(group).estimate()

    def load(
        self,
        group: str,
        invited: dict[str, float],
        accepted: set[str],
        version: int,
        estimates: dict[tuple[str, str], tuple[float, float]],
    ) -> None:
        """Take a group's state as another store holds it (``RedisCounters``' mirror):
        ``estimates`` maps ("rate", strategy) or ("time", "") to (decayed total, weight)."""
        self._groups[group] = _Group(invited, accepted, version)
        for (kind, strategy), (total, weight) in estimates.items():
            found = self._rate((group, strategy)) if kind == "rate" else self._time(group)
            found.total, found.weight = total, weight

    def _rate(self, key: tuple[str, str]) -> _Smoothed:
        found = self._acceptance.get(key)
        if found is None:
            found = self._acceptance[key] = _Smoothed(self.prior_acceptance)
        return found

    def _time(self, group: str) -> _Smoothed:
        found = self._answer.get(group)
        if found is None:
            found = self._answer[group] = _Smoothed(self.prior_answer_s)
        return found

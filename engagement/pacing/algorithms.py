"""GWE's pacing algorithms as pure functions of a group's capacity and what is in flight.

Symbols follow docs/pacing.md: S slots, I in progress, F free, Q accepted and not yet connected,
R interactions expected to end while new invitations are answered, X the room for acceptances,
A the acceptances still to come (a sum of Bernoulli variables, one per unanswered invitation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .model import Capacity, GroupConfig, Pending, Target

MAX_ALLOWED_AT_ONCE = 1000  # invitations one evaluation may allow; far above any real group
_EPSILON = 1e-9


class Accepts:
    """The distribution of A. SUPER_PROGRESSIVE computes it exactly (a Poisson-binomial,
    truncated to the values that matter); PREDICTIVE_B approximates it by a normal law, which
    is accurate for the many invitations of a large group and costs O(1) per invitation."""

    def __init__(self, exact: bool, upto: float, probs: Iterable[float] = ()) -> None:
        self.exact = exact
        self.mean = 0.0
        self.var = 0.0
        # pmf[k] = P(A = k) up to the truncation point: all that E[(X - A)+] needs. It grows
        # with the invitations added, so a large room costs nothing until it is used.
        self._size = max(1, math.ceil(upto) + 1)
        self._pmf = [1.0]
        for p in probs:
            self.add(p)

    def add(self, p: float) -> None:
        self.mean += p
        self.var += p * (1.0 - p)
        if self.exact:
            pmf, q = self._pmf, 1.0 - p
            if len(pmf) < self._size:
                pmf.append(0.0)
            for k in range(len(pmf) - 1, 0, -1):
                pmf[k] = pmf[k] * q + pmf[k - 1] * p
            pmf[0] *= q

    def overflow(self, x: float) -> float:
        """E[(A - x)+]: acceptances expected beyond the room ``x``."""
        if self.exact:
            below = sum(pk * (x - k) for k, pk in enumerate(self._pmf) if k < x)
            return max(0.0, self.mean - x + below)
        if self.var < _EPSILON:
            return max(0.0, self.mean - x)
        sd = math.sqrt(self.var)
        z = (x - self.mean) / sd
        return sd * _phi(z) + (self.mean - x) * (1.0 - _cdf(z))

    def at_most(self, m: int) -> float:
        """P(A <= m)."""
        if m < 0:
            return 0.0
        whole = len(self._pmf) < self._size  # not truncated: every value of A is there
        if self.exact and (whole or m < len(self._pmf)):
            return min(1.0, sum(self._pmf[: m + 1]))
        if self.var < _EPSILON:
            return 1.0 if self.mean <= m + _EPSILON else 0.0
        return _cdf((m + 0.5 - self.mean) / math.sqrt(self.var))


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def releases(cfg: GroupConfig, cap: Capacity, answer_time_s: float) -> float:
    """R: interactions expected to end before invitations sent now are answered (PREDICTIVE_B
    only; SUPER_PROGRESSIVE, for small groups where one slot matters, counts on none).
    Handle times taken as exponential: each of I ends within T with probability 1 - e^(-T/AHT)."""
    if not cfg.algorithm.predictive or cap.avg_handle_time_s <= 0:
        return 0.0
    return cap.in_progress * (1.0 - math.exp(-answer_time_s / cap.avg_handle_time_s))


def room(cfg: GroupConfig, cap: Capacity, pending: Pending, released: float) -> float:
    """X: acceptances the group can take from invitations (the answers already accepted and
    waiting are taken from it). _DUAL algorithms leave (1 - proactiveRatio) to reactive traffic."""
    share = cfg.proactive_ratio if cfg.algorithm.dual else 1.0
    if cfg.target is Target.BUSY_FACTOR:
        busy_after = cap.in_progress - released + cap.queued
        return share * (cfg.goal * cap.slots - busy_after) - pending.accepted
    return share * (cap.free + released) - pending.accepted


def fits(cfg: GroupConfig, accepts: Accepts, x: float) -> bool:
    """Whether the unanswered invitations (A) keep the group within its goal."""
    if cfg.target is Target.BUSY_FACTOR:
        return accepts.mean <= x + _EPSILON
    return accepts.overflow(x) <= cfg.goal * accepts.mean + _EPSILON


def accepts_of(cfg: GroupConfig, pending: Pending, x: float) -> Accepts:
    return Accepts(not cfg.algorithm.predictive, x, pending.invited)


def allowed_now(cfg: GroupConfig, pending: Pending, x: float, p_new: float) -> int:
    """How many more invitations, each accepted with probability ``p_new``, fit now."""
    if p_new <= 0:
        return MAX_ALLOWED_AT_ONCE
    accepts = accepts_of(cfg, pending, x)
    n = 0
    while n < MAX_ALLOWED_AT_ONCE:
        accepts.add(p_new)
        if not fits(cfg, accepts, x):
            break
        n += 1
    return n


def reactive_state(cap: Capacity, pending: Pending, released: float, exact: bool) -> float:
    """The probability that one more reactive interaction finds a free slot once the
    proactive invitations in flight are answered: P(A + Q + 1 <= F + R)."""
    x_all = cap.free + released - pending.accepted
    accepts = Accepts(exact, x_all, pending.invited)
    return round(accepts.at_most(math.floor(x_all + _EPSILON) - 1), 4)


def per_minute(cfg: GroupConfig, cap: Capacity, allowed: int, p: float) -> float:
    """Invitations the group can take over the next minute if it stays as it is: those allowed
    now, plus 1/p for each interaction expected to end within the minute (share of it, _DUAL)."""
    share = cfg.proactive_ratio if cfg.algorithm.dual else 1.0
    if cap.avg_handle_time_s <= 0 or p <= 0:
        return float(allowed)
    ending = cap.in_progress * (1.0 - math.exp(-60.0 / cap.avg_handle_time_s))
    if cfg.target is Target.BUSY_FACTOR:
        ending = min(ending, max(0.0, cfg.goal * cap.slots))
    return round(allowed + share * ending / p, 2)

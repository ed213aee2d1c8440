"""The pacing formulas (docs/pacing.md) on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from engagement.pacing import algorithms as alg
from engagement.pacing.model import Algorithm, Capacity, GroupConfig, Pending, Target


def capacity(ready: int = 0, busy: int = 0, per_agent: int = 1, in_progress: int | None = None,
             queued: int = 0, aht_s: float = 100.0) -> Capacity:  # fmt: skip
    in_progress = busy * per_agent if in_progress is None else in_progress
    return Capacity(ready, busy, per_agent, in_progress, queued, aht_s, 0.0)


SP = GroupConfig()
PB = GroupConfig(Algorithm.PREDICTIVE_B)


def test_exact_overflow_is_the_binomial_tail() -> None:
    accepts = alg.Accepts(True, 1.0, [0.3, 0.3])
    # A = 2 with probability 0.09 overflows one slot by one.
    assert accepts.overflow(1.0) == pytest.approx(0.09)
    assert accepts.at_most(0) == pytest.approx(0.49)
    assert accepts.at_most(1) == pytest.approx(0.91)


def test_normal_overflow_matches_the_exact_one_for_many_invitations() -> None:
    probs = [0.3] * 200
    exact, normal = alg.Accepts(True, 60.0, probs), alg.Accepts(False, 60.0, probs)
    assert normal.overflow(60.0) == pytest.approx(exact.overflow(60.0), abs=0.05)


@pytest.mark.parametrize(
    ("cfg", "cap", "pending", "p", "allowed"),
    [
        # one free slot, prior 25 %: a second invitation risks 0.0625 / 0.5 = 12.5 % > 3 %
        (SP, capacity(ready=1), Pending(), 0.25, 1),
        (SP, capacity(ready=1), Pending((0.25,)), 0.25, 0),  # the one in flight fills it
        (SP, capacity(ready=0, busy=2), Pending(), 0.25, 0),  # nobody free
        (SP, capacity(ready=1), Pending(accepted=1), 0.25, 0),  # accepted, not yet connected
        (SP, capacity(ready=4), Pending(), 0.25, 9),  # 9: 2.7 % overflow, 10: 4.1 %
        # busy factor 80 % of 10 slots with 5 busy: room 3 acceptances, 12 at 25 %
        (GroupConfig(target=Target.BUSY_FACTOR, goal_pct=80), capacity(ready=5, busy=5),
         Pending(), 0.25, 12),
        # _DUAL leaves half the free room to reactive chats
        (GroupConfig(target=Target.BUSY_FACTOR, goal_pct=80,
                     algorithm=Algorithm.SUPER_PROGRESSIVE_DUAL, proactive_ratio=0.5),
         capacity(ready=5, busy=5), Pending(), 0.25, 6),
    ],
)  # fmt: skip
def test_allowed_now(cfg: GroupConfig, cap: Capacity, pending: Pending, p: float, allowed: int):
    x = alg.room(cfg, cap, pending, alg.releases(cfg, cap, 10.0))
    assert alg.allowed_now(cfg, pending, x, p) == allowed


def test_predictive_counts_on_interactions_ending_while_visitors_answer() -> None:
    cap = capacity(busy=50, aht_s=100.0)
    assert alg.releases(SP, cap, 10.0) == 0.0
    assert alg.releases(PB, cap, 10.0) == pytest.approx(50 * (1 - math.exp(-0.1)))
    x = alg.room(PB, cap, Pending(), alg.releases(PB, cap, 10.0))
    assert alg.allowed_now(PB, Pending(), x, 0.25) > 0  # full now, yet inviting ahead
    assert alg.allowed_now(SP, Pending(), alg.room(SP, cap, Pending(), 0.0), 0.25) == 0


def test_reactive_state_is_the_chance_a_slot_is_left() -> None:
    cap = capacity(ready=1)
    assert alg.reactive_state(cap, Pending(), 0.0, exact=True) == 1.0
    assert alg.reactive_state(cap, Pending((0.4,)), 0.0, exact=True) == 0.6
    assert alg.reactive_state(capacity(busy=1), Pending(), 0.0, exact=True) == 0.0


def test_per_minute_adds_what_ends_within_the_minute() -> None:
    cap = capacity(ready=0, busy=6, aht_s=60.0)
    ending = 6 * (1 - math.exp(-1.0))
    assert alg.per_minute(SP, cap, 0, 0.25) == round(ending / 0.25, 2)

"""A short simulation: the goals' direction (docs/pacing.md has the full figures)."""

from __future__ import annotations

from engagement.pacing.model import Algorithm, GroupConfig, Target
from engagement.pacing.simulation import Policy, Scenario, simulate

SHORT = Scenario(agents=10, duration_s=4200.0, warmup_s=600.0, seed=7)
GATE = Policy("gate")
ABANDON = Policy(
    "sp-abandon", GroupConfig(Algorithm.SUPER_PROGRESSIVE, Target.ABANDONEMENT_RATE, 3)
)
BUSY = Policy("pb-busy", GroupConfig(Algorithm.PREDICTIVE_B, Target.BUSY_FACTOR, 80))


def test_pacing_abandons_far_fewer_than_the_gate_and_keeps_agents_busy() -> None:
    gate, paced = simulate(SHORT, GATE), simulate(SHORT, ABANDON)
    assert paced.abandonment <= 0.03 < 0.15 < gate.abandonment
    assert paced.invitations < gate.invitations
    assert paced.occupancy > 0.85


def test_busy_factor_target_holds_occupancy_near_its_goal() -> None:
    assert abs(simulate(SHORT, BUSY).occupancy - 0.80) < 0.05


def test_same_seed_same_figures() -> None:
    tiny = Scenario(agents=2, duration_s=1800.0, warmup_s=300.0, seed=3)
    assert simulate(tiny, ABANDON).row() == simulate(tiny, ABANDON).row()

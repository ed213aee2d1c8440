"""The report's gate baseline: the best a planner tuning the gate by hand gets within the goal."""

from __future__ import annotations

from engagement.pacing.model import Algorithm, GroupConfig, Target
from engagement.pacing.simreport import Run, gate_at_goal, gate_min_ready, judge, surge
from engagement.pacing.simulation import Policy, Result, Scenario

SC = Scenario(agents=10)
Key = tuple[int, float]  # min_ready, demand cut


def fake(figures: dict[Key, tuple[float, float]]) -> tuple[Run, list[Key]]:
    """A simulation answering (abandonment, occupancy) per (min_ready, demand cut); any other
    run abandons half its visitors."""
    runs: list[Key] = []

    def run(sc: Scenario, policy: Policy) -> Result:
        cut = round(sc.demand / SC.demand, 3)
        runs.append((policy.min_ready, cut))
        abandonment, occupancy = figures.get((policy.min_ready, cut), (0.5, 0.99))
        return Result(sc, policy, accepted=1000, abandoned=round(1000 * abandonment),
                      busy_slot_s=occupancy * sc.slots * 100, measured_s=100)  # fmt: skip

    return run, runs


def test_the_gate_is_tried_with_several_min_ready_at_the_highest_demand_within_the_goal() -> None:
    run, runs = fake({
        (10, 0.7): (0.013, 0.727),  # all agents ready: within the goal at 70 % of the demand
        (2, 0.5): (0.048, 0.863),  # two ready, half the demand: too many abandon
        (2, 0.45): (0.025, 0.829),  # 45 %: within the goal, and busier than the above
        (2, 0.4): (0.012, 0.778),
    })  # fmt: skip
    best = gate_at_goal(SC, 3.0, run)
    assert best is not None
    assert (best.policy.min_ready, round(best.scenario.demand / SC.demand, 3)) == (2, 0.45)
    assert best.policy.name == "gate min_ready=2, demand x0.45"
    assert (2, 0.4) not in runs  # each min_ready stops at its highest demand within the goal
    assert gate_min_ready(10) == [1, 2, 5, 10]
    assert gate_min_ready(2) == [1, 2]


def test_the_tuned_gate_is_shown_with_more_visitors_than_it_was_tuned_for() -> None:
    run, _ = fake({(2, 0.585): (0.12, 0.9)})
    tuned = Result(Scenario(agents=10, demand=SC.demand * 0.45), Policy("gate min_ready=2, "
                   "demand x0.45", min_ready=2))  # fmt: skip
    surged = surge(tuned, run)
    assert (surged.policy.min_ready, surged.abandonment) == (2, 0.12)
    assert surged.policy.name == "gate min_ready=2, demand x0.45, +30 % visitors"


def test_every_algorithm_with_the_abandonment_target_is_judged_against_the_gate() -> None:
    gate = Result(SC, Policy("gate"), busy_slot_s=0.70 * SC.slots * 100, measured_s=100)
    dual = GroupConfig(Algorithm.SUPER_PROGRESSIVE_DUAL, Target.ABANDONEMENT_RATE, 3, 0.8)
    kept_room = Result(SC, Policy("dual", dual), accepted=1000, abandoned=5,
                       busy_slot_s=0.88 * SC.slots * 100, measured_s=100)  # fmt: skip
    verdict = judge(kept_room, gate)
    assert (verdict.met, verdict.goal) == (False, "abandonment <= 3 %, occupancy >= 90.0 %")
    busier = Result(SC, Policy("dual", dual), accepted=1000, abandoned=5,
                    busy_slot_s=0.91 * SC.slots * 100, measured_s=100)  # fmt: skip
    assert judge(busier, gate).met

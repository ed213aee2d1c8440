"""`engagement simulate-pacing`: every algorithm and target against today's gate, checked
against the goals of docs/pacing.md, with a plot (matplotlib, optional: `pip install
matplotlib`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .model import Target
from .simulation import Policy, Result, Scenario, policies, simulate

AGENTS = (2, 10, 50)
GOAL_ABANDON_PCT = 3.0
GOAL_BUSY_PCT = 80.0
BUSY_TOLERANCE_PTS = 5.0
GAIN_OVER_GATE_PTS = 20.0
# The gate cannot pace: to reach the same abandonment it must be given fewer visitors (fewer
# or narrower strategies). A planner tuning it would try several min_ready and cut demand
# until abandonment is within the goal: these are the min_ready tried (1, 2 and these shares
# of the agents) and the demands, as a share of the scenario's, highest first.
GATE_MIN_READY_SHARES = (0.1, 0.2, 0.5, 1.0)
GATE_DEMAND_CUTS = (*(round(1.0 - 0.05 * i, 2) for i in range(15)), 0.25, 0.18, 0.12, 0.08)
GATE_SURGE = 1.3  # the tuned gate again, with this many more visitors than it was tuned for

Run = Callable[[Scenario, Policy], Result]


@dataclass(slots=True)
class Verdict:
    result: Result
    goal: str
    met: bool


def gate_min_ready(agents: int) -> list[int]:
    shares = (max(1, round(share * agents)) for share in GATE_MIN_READY_SHARES)
    return sorted({1, min(2, agents), *shares})


def gate_at_goal(sc: Scenario, goal_pct: float, run: Run = simulate) -> Result | None:
    """The gate's best occupancy with abandonment within the goal: for each min_ready, the
    highest demand in GATE_DEMAND_CUTS at which it stays within the goal; the best of those."""
    best: Result | None = None
    for min_ready in gate_min_ready(sc.agents):
        for cut in GATE_DEMAND_CUTS:
            name = f"gate min_ready={min_ready}, demand x{cut:g}"
            r = run(replace(sc, demand=sc.demand * cut), Policy(name, min_ready=min_ready))
            if 100 * r.abandonment <= goal_pct:
                if best is None or r.occupancy > best.occupancy:
                    best = r
                break
    return best


def surge(tuned: Result, run: Run = simulate) -> Result:
    """The tuned gate when GATE_SURGE times more visitors qualify than it was tuned for."""
    sc, policy = tuned.scenario, tuned.policy
    name = f"{policy.name}, +{100 * (GATE_SURGE - 1):.0f} % visitors"
    return run(replace(sc, demand=sc.demand * GATE_SURGE), Policy(name, min_ready=policy.min_ready))


def judge(r: Result, tuned: Result | None) -> Verdict:
    """Issue 12's goals. ABANDONEMENT_RATE, every algorithm (the _DUAL ones too, though they
    leave room to reactive chats on purpose): abandonment within the goal and occupancy
    GAIN_OVER_GATE_PTS above the tuned gate's. BUSY_FACTOR: occupancy near its goal."""
    cfg = r.policy.config
    assert cfg is not None
    if cfg.target is Target.ABANDONEMENT_RATE:
        floor = 100 * (tuned.occupancy if tuned else 0.0) + GAIN_OVER_GATE_PTS
        met = 100 * r.abandonment <= GOAL_ABANDON_PCT and 100 * r.occupancy >= floor
        return Verdict(r, f"abandonment <= {GOAL_ABANDON_PCT:g} %, occupancy >= {floor:.1f} %", met)
    met = abs(100 * r.occupancy - GOAL_BUSY_PCT) <= BUSY_TOLERANCE_PTS
    return Verdict(r, f"occupancy {GOAL_BUSY_PCT:g} +/- {BUSY_TOLERANCE_PTS:g} %", met)


def run(duration_s: float, seed: int) -> tuple[list[Verdict], list[Result]]:
    verdicts: list[Verdict] = []
    gates: list[Result] = []
    for agents in AGENTS:
        sc = Scenario(agents=agents, duration_s=duration_s, seed=seed)
        gate = simulate(sc, Policy("gate min_ready=1 (today)"))
        tuned = gate_at_goal(sc, GOAL_ABANDON_PCT)
        gates += [gate] + ([tuned, surge(tuned)] if tuned else [])
        verdicts += [
            judge(simulate(sc, policy), tuned)
            for policy in policies(GOAL_ABANDON_PCT, GOAL_BUSY_PCT)
        ]
    return verdicts, gates


def table(verdicts: list[Verdict], gates: list[Result]) -> str:
    head = (
        "| agents | policy | invitations | abandonment | reactive abandonment | occupancy | goal |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    rows = [(g, "") for g in gates] + [(v.result, _goal(v)) for v in verdicts]
    for r, goal in sorted(rows, key=lambda row: row[0].scenario.agents):
        lines.append(
            f"| {r.scenario.agents} | {r.policy.name} | {r.invitations} | "
            f"{100 * r.abandonment:.1f} % | {100 * r.reactive_abandonment:.1f} % | "
            f"{100 * r.occupancy:.1f} % | {goal} |"
        )
    return "\n".join(lines)


def _goal(v: Verdict) -> str:
    return ("met: " if v.met else "NOT met: ") + v.goal


def plot(verdicts: list[Verdict], gates: list[Result], path: Path) -> bool:
    """Occupancy and abandonment per policy, one panel per group size; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(len(AGENTS), 1, figsize=(11, 4 * len(AGENTS)), squeeze=False)
    for ax, agents in zip((a[0] for a in axes), AGENTS, strict=True):
        results = [g for g in gates if g.scenario.agents == agents]
        results += [v.result for v in verdicts if v.result.scenario.agents == agents]
        names = [r.policy.name.replace(" ", "\n", 1) for r in results]
        xs = range(len(results))
        ax.bar([x - 0.2 for x in xs], [100 * r.occupancy for r in results], 0.4,
               label="occupancy %", color="#1d4ed8")  # fmt: skip
        ax.bar([x + 0.2 for x in xs], [100 * r.abandonment for r in results], 0.4,
               label="abandonment %", color="#dc2626")  # fmt: skip
        ax.axhline(GOAL_BUSY_PCT, color="#64748b", linestyle="--", linewidth=0.8)
        ax.axhline(GOAL_ABANDON_PCT, color="#64748b", linestyle=":", linewidth=0.8)
        ax.set_xticks(list(xs), names, fontsize=6, rotation=30, ha="right")
        ax.set_ylim(0, 105)
        ax.set_title(f"{agents} agents", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(duration_s: float, seed: int, plot_path: Path | None) -> int:
    verdicts, gates = run(duration_s, seed)
    print(table(verdicts, gates))
    if plot_path is not None:
        drawn = plot(verdicts, gates, plot_path)
        print(f"plot: {plot_path}" if drawn else "plot: skipped (pip install matplotlib)")
    failed = [v for v in verdicts if not v.met]
    print(f"{len(verdicts) - len(failed)} of {len(verdicts)} goals met")
    return 1 if failed else 0

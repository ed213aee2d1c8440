"""The experiment report: per strategy and arm, visitors qualified, shown, accepted, converted,
the conversion rate and value, and the lift over the holdout with its 95 % interval.

The unit is the visitor (globalVisitID): assignment is per visitor, so a visitor's attempts
of one strategy share an arm and the groups are independent, as the statistics assume. The
comparison is by assignment ("intent to treat"): every visitor of an arm counts, shown or not,
so the lift is what the strategy does to everyone it picks, against the same people left alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..reports import ReportFilter, csv_cell
from ..strategy.experiment import HOLDOUT, INVITED
from ..visits.store import History
from .stats import Lift, lift, wilson

ALL_INVITED = "all invited"  # the arms other than the holdout, together (with 2+ variants)
CSV_HEADER = ("strategy", "arm", "qualified", "shown", "accepted", "converted",
              "conversion_rate", "rate_low", "rate_high", "value", "value_per_visitor", "lift",
              "lift_low", "lift_high", "relative_lift")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """What the report needs of one attempt."""

    strategy: str
    variant: str
    visitor: str  # globalVisitID
    states: frozenset[str]
    goals: Mapping[str, float]  # the goal events that converted it: event ID -> value


@dataclass(slots=True)
class ArmRow:
    strategy: str
    arm: str  # "holdout", a variant's name, "invited" (no variants) or "all invited"
    qualified: int = 0
    shown: int = 0
    accepted: int = 0
    converted: int = 0
    value: float = 0.0
    lift: Lift | None = None

    @property
    def rate(self) -> float | None:
        return self.converted / self.qualified if self.qualified else None

    @property
    def value_per_visitor(self) -> float | None:
        """The value over every visitor of the arm: arms of different sizes compare on it
        (the holdout is small, so its total is too)."""
        return self.value / self.qualified if self.qualified else None

    @property
    def rate_interval(self) -> tuple[float, float] | None:
        return wilson(self.converted, self.qualified) if self.qualified else None

    @property
    def is_holdout(self) -> bool:
        return self.arm == HOLDOUT


@dataclass(slots=True)
class _Visitor:
    shown: bool = False
    accepted: bool = False
    # By goal event: one order inside the windows of two of the visitor's attempts (two
    # visits a day apart) is one order, and its value counts once.
    goals: dict[str, float] = field(default_factory=dict)

    def add(self, r: ExperimentRecord) -> None:
        self.shown |= "shown" in r.states
        self.accepted |= "accepted" in r.states
        self.goals.update(r.goals)


@dataclass(slots=True)
class _Arm:
    visitors: dict[str, _Visitor] = field(default_factory=dict)

    def row(self, strategy: str, arm: str) -> ArmRow:
        vs = self.visitors.values()
        return ArmRow(strategy, arm, len(self.visitors), sum(v.shown for v in vs),
                      sum(v.accepted for v in vs), sum(bool(v.goals) for v in vs),
                      round(sum(sum(v.goals.values()) for v in vs), 2))  # fmt: skip


def arm_name(variant: str) -> str:
    return "invited" if variant == INVITED else variant


def experiment_rows(records: Iterable[ExperimentRecord]) -> list[ArmRow]:
    """Rows per strategy (by name): the holdout first, then each arm, then all invited arms
    together when there are several; each with its lift over the holdout."""
    arms: dict[str, dict[str, _Arm]] = {}
    for r in records:
        by_arm = arms.setdefault(r.strategy, {})
        visitors = by_arm.setdefault(arm_name(r.variant), _Arm()).visitors
        visitors.setdefault(r.visitor, _Visitor()).add(r)
    rows: list[ArmRow] = []
    for strategy in sorted(arms):
        by_arm = arms[strategy]
        names = sorted(a for a in by_arm if a != HOLDOUT)
        out = [by_arm[name].row(strategy, name) for name in names]
        if len(names) > 1:
            together = _Arm()
            for name in names:
                for visitor, v in by_arm[name].visitors.items():
                    merged = together.visitors.setdefault(visitor, _Visitor())
                    merged.shown |= v.shown
                    merged.accepted |= v.accepted
                    merged.goals.update(v.goals)
            out.append(together.row(strategy, ALL_INVITED))
        holdout = by_arm.get(HOLDOUT)
        if holdout is not None:
            control = holdout.row(strategy, HOLDOUT)
            for row in out:
                row.lift = lift(row.converted, row.qualified, control.converted, control.qualified)
            out.insert(0, control)
        rows.extend(out)
    return rows


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def to_csv(rows: Iterable[ArmRow]) -> str:
    """A header, then one row per strategy and arm; text that a spreadsheet would read as a
    formula is prefixed with a quote."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        interval = r.rate_interval or (None, None)
        lf = r.lift
        writer.writerow([
            csv_cell(r.strategy), csv_cell(r.arm), r.qualified, r.shown, r.accepted, r.converted,
            _num(r.rate), _num(interval[0]), _num(interval[1]), f"{r.value:.2f}",
            "" if r.value_per_visitor is None else f"{r.value_per_visitor:.2f}",
            _num(lf.difference if lf else None), _num(lf.low if lf else None),
            _num(lf.high if lf else None), _num(lf.relative if lf else None),
        ])  # fmt: skip
    return out.getvalue()


# -- reading the history store --

# One row per attempt and conversion (one with NULLs for an attempt that converted nothing).
SELECT = """
SELECT a.attempt_id, a.strategy, a.variant, a.global_visit_id, a.transitions,
       c.event_id, c.value
FROM attempts a LEFT JOIN conversions c ON c.attempt_id = a.attempt_id
WHERE a.origin = 'strategy'
"""


async def read_experiments(
    history: History, where: ReportFilter, running: Collection[str]
) -> list[ArmRow]:
    """The rows for the strategies' attempts created in the filter's days, of strategies that
    run an experiment: ``running`` now (a goal, holdout or variants), or in the period (an
    attempt held out or of a variant, or a conversion). The others have nothing to compare
    and no goal: listed, they would read as converting 0 % of their visitors."""
    await history.flush()
    sql, args = SELECT, list[object]()
    start, end = where.bounds_ms()
    if start is not None:
        sql += " AND a.created_at >= ?"
        args.append(start)
    if end is not None:
        sql += " AND a.created_at < ?"
        args.append(end)
    if where.strategy is not None:
        sql += " AND a.strategy = ?"
        args.append(where.strategy)
    found = await history.db.fetchall(sql, args)
    records = _records(found)
    experiments = {r.strategy for r in records if r.variant != INVITED or r.goals}
    experiments.update(running)
    return experiment_rows(r for r in records if r.strategy in experiments)


def _records(rows: Iterable[Any]) -> list[ExperimentRecord]:
    by_attempt: dict[str, tuple[Any, dict[str, float]]] = {}
    for r in rows:
        _, goals = by_attempt.setdefault(r[0], (r, {}))
        if r[5] is not None:
            goals[r[5]] = float(r[6])
    return [
        ExperimentRecord(r[1], r[2], r[3], frozenset(str(t[0]) for t in json.loads(r[4])), goals)
        for r, goals in by_attempt.values()
    ]

"""The report's chart, laid out here and drawn as inline SVG by a template (no script)."""

from __future__ import annotations

from dataclasses import dataclass

from ..experiments.report import ArmRow
from ..experiments.simulate import DryRun
from ..reports import FUNNEL, FunnelRow

WIDTH = 760
LABEL_W = 120  # stage names, right-aligned before the bars
COUNT_W = 64  # room for the count after the longest bar
TITLE_H = 30
BAR_H = 16
BAR_GAP = 6
PANEL_GAP = 18
# One colour per step: the answers stand apart (green yes, red no, amber no answer).
COLORS = {
    "detected": "#64748b",
    "paced": "#a16207",
    "offered": "#3b82f6",
    "shown": "#1d4ed8",
    "accepted": "#15803d",
    "declined": "#dc2626",
    "timed_out": "#d97706",
    "launched": "#0f766e",
    "completed": "#7c3aed",
}
LABELS = {state: state.replace("_", " ") for state in FUNNEL}


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    count: int
    y: int
    width: float
    color: str


@dataclass(frozen=True, slots=True)
class Panel:
    strategy: str
    acceptance_rate: float | None
    y: int
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    label_w: int
    bar_h: int
    panels: list[Panel]


def funnel_chart(totals: list[FunnelRow]) -> Chart | None:
    """One panel per strategy, a bar per funnel step, all on one scale (None: no data)."""
    if not totals:
        return None
    top = max(max(row.counts.values()) for row in totals) or 1
    span = WIDTH - LABEL_W - COUNT_W
    panels, y = [], 0
    for row in totals:
        bars = []
        for i, state in enumerate(FUNNEL):
            n = row.counts[state]
            width = max(2.0, span * n / top) if n else 0.0
            bars.append(
                Bar(LABELS[state], n, TITLE_H + i * (BAR_H + BAR_GAP), width, COLORS[state])
            )
        panels.append(Panel(row.strategy, row.acceptance_rate, y, bars))
        y += TITLE_H + len(FUNNEL) * (BAR_H + BAR_GAP) + PANEL_GAP
    return Chart(WIDTH, y - PANEL_GAP, LABEL_W, BAR_H, panels)


# -- the experiment chart: conversion rate per arm, its interval, and the verdict --

RATE_COLORS = {"holdout": "#94a3b8", "arm": "#2563eb"}
RATE_WIDTH = 960
RATE_SPAN = 440  # the bars' scale; the rate and the verdict follow it (~320 px of text)
VERDICT_COLORS = {"better": "#15803d", "worse": "#dc2626", "unclear": "#64748b"}


@dataclass(frozen=True, slots=True)
class RateBar:
    label: str
    rate: float | None
    y: int
    width: float  # the rate
    low_x: float  # the interval's ends
    high_x: float
    color: str
    verdict: str  # better | worse | unclear | "" (the holdout, or no holdout)
    note: str  # "+2.1 pts (+0.4 to +3.8)"


@dataclass(frozen=True, slots=True)
class RatePanel:
    strategy: str
    y: int
    bars: list[RateBar]


@dataclass(frozen=True, slots=True)
class RateChart:
    width: int
    height: int
    label_w: int
    span: int
    bar_h: int
    panels: list[RatePanel]
    colors: dict[str, str]


def _points(x: float) -> str:
    return f"{x * 100:+.1f}"


def experiment_chart(rows: list[ArmRow]) -> RateChart | None:
    """One panel per strategy, a bar per arm on one scale: the conversion rate, a whisker for
    its 95 % interval, and beside it the lift over the holdout, coloured by its verdict."""
    rows = [r for r in rows if r.qualified]
    if not rows:
        return None
    top = max((r.rate_interval or (0.0, 0.0))[1] for r in rows) or 1.0
    span = RATE_SPAN
    panels: list[RatePanel] = []
    y = 0
    for strategy in dict.fromkeys(r.strategy for r in rows):
        bars = []
        for i, r in enumerate(r for r in rows if r.strategy == strategy):
            low, high = r.rate_interval or (0.0, 0.0)
            verdict, note = "", ""
            if r.lift is not None:
                lf = r.lift
                verdict = ("unclear" if not lf.significant
                           else "better" if lf.difference > 0 else "worse")  # fmt: skip
                note = f"{_points(lf.difference)} pts ({_points(lf.low)} to {_points(lf.high)})"
            color = RATE_COLORS["holdout" if r.is_holdout else "arm"]
            bars.append(RateBar(r.arm, r.rate, TITLE_H + i * (BAR_H + BAR_GAP + 4),
                                span * (r.rate or 0.0) / top, LABEL_W + span * low / top,
                                LABEL_W + span * high / top, color, verdict, note))  # fmt: skip
        panels.append(RatePanel(strategy, y, bars))
        y += TITLE_H + len(bars) * (BAR_H + BAR_GAP + 4) + PANEL_GAP
    return RateChart(RATE_WIDTH, y - PANEL_GAP, LABEL_W, span, BAR_H, panels, VERDICT_COLORS)


# -- the dry run's chart: invitations per strategy, the draft against live --

DRY_RUN_COLORS = {"draft": "#2563eb", "live": "#94a3b8", "held out": "#d97706"}


def dry_run_chart(run: DryRun) -> Chart | None:
    """One panel per strategy: invitations the draft would have sent, those live sent, and
    visitors the draft would hold out; all on one scale (None: nothing to show)."""
    rows = [(r.name, {"draft": r.total, "live": r.live_total, "held out": len(r.held_out)})
            for r in run.strategies]  # fmt: skip
    top = max((n for _, counts in rows for n in counts.values()), default=0)
    if not top:
        return None
    span = WIDTH - LABEL_W - COUNT_W
    panels, y = [], 0
    for name, counts in rows:
        bars = [Bar(label, n, TITLE_H + i * (BAR_H + BAR_GAP), max(2.0, span * n / top) if n
                    else 0.0, DRY_RUN_COLORS[label])
                for i, (label, n) in enumerate(counts.items())]  # fmt: skip
        panels.append(Panel(name, None, y, bars))
        y += TITLE_H + len(bars) * (BAR_H + BAR_GAP) + PANEL_GAP
    return Chart(WIDTH, y - PANEL_GAP, LABEL_W, BAR_H, panels)

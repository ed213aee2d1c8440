"""The report's chart, laid out here and drawn as inline SVG by a template (no script)."""

from __future__ import annotations

from dataclasses import dataclass

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

"""The pacing page: each agent group's capacity, what is in flight and what pacing allows,
drawn as inline SVG (no chart library) and refreshed live by pacing.js."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api.state import PACER
from ..monitoring.ingest import now_ms
from ..pacing.model import Plan
from .templating import render

WIDTH = 760
LABEL_W = 120  # group names, right-aligned before the bars
BAR_W = WIDTH - LABEL_W - 8
ROW_H = 46
BAR_H = 18
# A group's slots, left to right: busy now, accepted and on their way, acceptances expected from
# the invitations in flight, then free. Free room left of what is expected is what pacing fills.
SEGMENTS = (
    ("in progress", "#1d4ed8"),
    ("accepted, connecting", "#15803d"),
    ("expected from invitations", "#86efac"),
    ("free", "#e2e8f0"),
)


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    x: float
    width: float
    color: str
    value: float


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    y: int
    caption: str
    segments: list[Segment]


@dataclass(frozen=True, slots=True)
class CapacityChart:
    width: int
    height: int
    label_w: int
    bar_h: int
    rows: list[Row]
    legend: tuple[tuple[str, str], ...] = SEGMENTS


def capacity_chart(plans: list[Plan]) -> CapacityChart | None:
    """One bar per group with a fresh report, its slots to scale (None: no such group)."""
    rows: list[Row] = []
    for plan in plans:
        cap = plan.capacity
        if cap is None or cap.slots == 0:
            continue
        busy = min(cap.slots, cap.in_progress + cap.queued)
        values = [busy, plan.pending.accepted, sum(plan.pending.invited)]
        values.append(max(0.0, cap.slots - sum(values)))
        x, segments = float(LABEL_W), []
        for (label, color), value in zip(SEGMENTS, values, strict=True):
            width = BAR_W * min(value, cap.slots) / cap.slots
            segments.append(Segment(label, x, width, color, round(value, 2)))
            x += width
        caption = (
            f"{cap.slots} slots · {plan.allowed_now} invitations allowed now · "
            f"{plan.allowed_per_minute:g}/min · {plan.queued_visitors} waiting"
        )
        rows.append(Row(plan.group, len(rows) * ROW_H, caption, segments))
    if not rows:
        return None
    return CapacityChart(WIDTH, len(rows) * ROW_H, LABEL_W, BAR_H, rows)


def _context(request: web.Request) -> dict[str, Any]:
    pacer, now = request.app[PACER], now_ms()
    plans = [pacer.plan(group, now) for group in pacer.groups()]
    return {"plans": plans, "chart": capacity_chart(plans)}


async def pacing_page(request: web.Request) -> web.StreamResponse:
    """Agent groups and their pacing, live."""
    return render(request, "pacing.html", _context(request))


async def pacing_live(request: web.Request) -> web.StreamResponse:
    """The page's live part, rendered the same way, for pacing.js to swap in."""
    return render(request, "_pacing.html", _context(request))

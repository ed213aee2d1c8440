"""Goal windows: which of a visitor's events convert an attempt, from its decision until
``within_h`` hours later, for an event goal with conditions and for a page goal."""

from __future__ import annotations

from typing import Any

from engagement.attempts import Attempt, Origin
from engagement.experiments.goals import GoalWindows
from engagement.experiments.model import Conversion
from engagement.strategy.experiment import compile_goal
from engagement.strategy.schema import Goal
from engagement.visits.model import Event, EventType

from .conftest import new_id

HOUR_MS = 3_600_000
DECIDED = 1_700_000_000_000


class Sink:
    def __init__(self) -> None:
        self.conversions: list[Conversion] = []

    def record_conversion(self, conversion: Conversion) -> None:
        self.conversions.append(conversion)


def attempt(visitor: str) -> Attempt:
    return Attempt(new_id(), new_id(), visitor, new_id(), "big-cart", Origin.STRATEGY,
                   "chat.html", "chat", {}, 30, DECIDED, variant="holdout")  # fmt: skip


def event(visitor: str, name: str, at: int, data: dict[str, Any] | None = None,
          url: str = "https://shop.example/") -> Event:  # fmt: skip
    kind = EventType.SYSTEM if name == "PageEntered" else EventType.BUSINESS
    return Event(new_id(), kind, name, new_id(), new_id(), visitor, at, at, url, "", "en",
                 data or {})  # fmt: skip


def test_an_event_goal_counts_inside_its_window_only():
    goal = compile_goal(Goal.model_validate(
        {"event": {"name": "OrderPlaced", "where": {"total": {"gt": 0}}}, "within_h": 2,
         "value": "total"}
    ))  # fmt: skip
    sink = Sink()
    windows = GoalWindows(sink)
    visitor, other = new_id(), new_id()
    a = attempt(visitor)
    windows.open(a, goal)

    inside = event(visitor, "OrderPlaced", DECIDED + 2 * HOUR_MS - 1, {"total": "19.90"})
    windows.on_events([
        event(visitor, "OrderPlaced", DECIDED - 1, {"total": 5}),  # before the decision
        event(visitor, "OrderPlaced", DECIDED + 1000, {"total": 0}),  # fails its condition
        event(visitor, "AddToCart", DECIDED + 2000, {"total": 5}),  # another event
        event(other, "OrderPlaced", DECIDED + 3000, {"total": 5}),  # another visitor
        inside,
        event(visitor, "OrderPlaced", DECIDED + 2 * HOUR_MS, {"total": 7}),  # window ended
    ])  # fmt: skip

    assert sink.conversions == [
        Conversion(a.attempt_id, inside.event_id, "big-cart", "holdout", inside.visit_id,
                   visitor, "OrderPlaced", inside.server_time, 19.9),
    ]  # fmt: skip
    assert windows.close_ended(DECIDED + 2 * HOUR_MS - 1) == 0
    assert windows.close_ended(DECIDED + 2 * HOUR_MS, [other]) == 0  # a sweep's slice
    assert windows.close_ended(DECIDED + 2 * HOUR_MS, [other, visitor]) == 1
    assert len(windows) == 0


def test_a_page_goal_matches_the_url_of_a_page_entered():
    goal = compile_goal(Goal.model_validate({"page": "/thanks", "within_h": 1}))
    sink = Sink()
    windows = GoalWindows(sink)
    visitor = new_id()
    a = attempt(visitor)
    windows.open(a, goal)

    thanks = event(visitor, "PageEntered", DECIDED + 60_000, url="https://shop.example/thanks")
    windows.on_events([
        event(visitor, "PageEntered", DECIDED + 1000, url="https://shop.example/cart"),
        event(visitor, "OrderPlaced", DECIDED + 2000, url="https://shop.example/thanks"),
        thanks,
    ])  # fmt: skip

    assert [(c.attempt_id, c.event_id, c.goal, c.value) for c in sink.conversions] == [
        (a.attempt_id, thanks.event_id, "page", 0.0)
    ]

"""What experiments record: a conversion, a goal reached after an invitation (or a holdout)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conversion:
    """A goal event of the visitor within the window of one attempt; one per attempt and event."""

    attempt_id: str
    event_id: str
    strategy: str
    variant: str  # the attempt's arm ("holdout" for the control group)
    visit_id: str  # where the goal was reached (may be a later visit of the visitor)
    global_visit_id: str
    goal: str  # the goal event's name, or "page"
    at: int  # engine ms of the goal event
    value: float  # the goal's value field (0 without one)

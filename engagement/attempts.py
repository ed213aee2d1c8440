"""Engagement attempts: one per decision to invite a visit, with a recorded lifecycle."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any


class State(enum.StrEnum):
    DETECTED = "detected"  # a strategy (or an agent, or an outside system) decided
    PACED = "paced"  # its agent group has no room now: waiting in line for an invitation
    OFFERED = "offered"  # the notification left for the visitor's page
    SHOWN = "shown"  # the invitation is on screen
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"  # nobody answered in time, or it was never offered
    CLOSED = "closed"  # the visitor closed it without answering
    FAILED = "failed"
    CANCELLED = "cancelled"  # an outside decision-maker said noengage
    LAUNCHED = "launched"  # chat opened / callback sent
    COMPLETED = "completed"
    HELD_OUT = "held_out"  # in the strategy's control group: recorded, never shown


LIVE = frozenset(
    {State.DETECTED, State.PACED, State.OFFERED, State.SHOWN, State.ACCEPTED, State.LAUNCHED}
)
# An offered or shown invitation ends one of these ways (or is withdrawn: cancelled).
ANSWERS = frozenset(
    {State.ACCEPTED, State.DECLINED, State.TIMED_OUT, State.CLOSED, State.FAILED, State.CANCELLED}
)
# What may follow what; anything else is refused (and reported, never silently applied).
NEXT: dict[State, frozenset[State]] = {
    State.DETECTED: frozenset(
        {State.PACED, State.OFFERED, State.TIMED_OUT, State.CANCELLED, State.FAILED, State.HELD_OUT}
    ),
    State.PACED: frozenset({State.OFFERED, State.TIMED_OUT, State.CANCELLED, State.FAILED}),
    State.OFFERED: ANSWERS | {State.SHOWN},
    State.SHOWN: ANSWERS,
    State.ACCEPTED: frozenset({State.LAUNCHED, State.FAILED, State.COMPLETED}),
    State.LAUNCHED: frozenset({State.COMPLETED, State.FAILED}),
}


class Origin(enum.StrEnum):
    STRATEGY = "strategy"
    AGENT = "agent"
    EXTERNAL = "external"


def new_attempt_id() -> str:
    return uuid.uuid4().hex.upper()


@dataclass(slots=True)
class Attempt:
    attempt_id: str
    visit_id: str
    global_visit_id: str
    page_id: str
    strategy: str
    origin: Origin
    invite: str
    media: str
    params: dict[str, Any]
    timeout_s: float
    created_at: int  # engine ms
    state: State = State.DETECTED
    transitions: list[tuple[State, int, str]] = field(default_factory=list)  # state, ms, why
    handoff: dict[str, Any] = field(default_factory=dict)  # what the media side said (GMS _id...)
    variant: str = ""  # the experiment arm: "holdout", a variant's name, or "" (none)

    def __post_init__(self) -> None:
        if not self.transitions:
            self.transitions.append((self.state, self.created_at, ""))

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def at(self, state: State) -> int | None:
        """When the attempt entered ``state``, if it did."""
        return next((t for s, t, _ in self.transitions if s is state), None)

    def can_move(self, state: State) -> bool:
        return state in NEXT.get(self.state, frozenset())

    def move(self, state: State, now_ms: int, reason: str = "") -> None:
        if not self.can_move(state):
            raise ValueError(f"attempt {self.attempt_id} cannot go from {self.state} to {state}")
        self.state = state
        self.transitions.append((state, now_ms, reason))

    def as_json(self) -> dict[str, Any]:
        return {
            "attemptID": self.attempt_id,
            "visitID": self.visit_id,
            "globalVisitID": self.global_visit_id,
            "pageID": self.page_id,
            "strategy": self.strategy,
            "origin": self.origin.value,
            "invite": self.invite,
            "media": self.media,
            "params": self.params,
            "timeoutS": self.timeout_s,
            "createdAt": self.created_at,
            "state": self.state.value,
            "transitions": [
                {"state": s.value, "at": t, "reason": r} for s, t, r in self.transitions
            ],
            "handoff": self.handoff,
            "variant": self.variant,
        }

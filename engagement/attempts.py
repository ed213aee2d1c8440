"""Engagement attempts: one record per decision to invite a visit, with its transitions.

The record only; ``lifecycle.owner.Lifecycle`` is the one code that moves it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from .lifecycle.transitions import ANSWERS, LIVE, NEXT, State, can_move

__all__ = ["ANSWERS", "LIVE", "NEXT", "Attempt", "Origin", "State", "new_attempt_id"]


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
        return can_move(self.state, state)

    def move(self, state: State, now_ms: int, reason: str = "") -> None:
        """Append a transition (the lifecycle owner's primitive; tests build records with it)."""
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

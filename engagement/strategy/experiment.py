"""A strategy's experiment: its goal, its control group and its variants, compiled.

Assignment is a pure function of the visitor (globalVisitID) and the strategy's name: a
BLAKE2b hash, so every node and every restart puts a visitor in the same group, and a visitor
stays in it for every visit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..visits.model import Event
from .conditions import event_test, field_value, text_test
from .schema import Goal, Offer, StrategySpec, Variant

if TYPE_CHECKING:
    from .engine import CompiledStrategy

HOLDOUT = "holdout"  # the arm of held-out visitors, in attempts and reports
INVITED = ""  # the one arm of a strategy without variants
HASH_SPAN = float(1 << 64)  # the hash's first 8 bytes, as a share of [0, 1)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    weight: float
    offer: Offer


@dataclass(frozen=True, slots=True)
class CompiledGoal:
    """Success after an invitation: ``matches`` an event within ``within_ms`` of it."""

    name: str  # the event name, or "page"
    matches: Callable[[Event], bool]
    within_ms: int
    value_field: str | None

    def value_of(self, event: Event) -> float:
        if self.value_field is None:
            return 0.0
        value = field_value(event.data, self.value_field)
        try:
            return float(value) if value is not None and not isinstance(value, bool) else 0.0
        except (TypeError, ValueError):
            return 0.0  # "n/a" in a total: counted as a conversion worth nothing


@dataclass(frozen=True, slots=True)
class Assignment:
    held_out: bool
    variant: str  # HOLDOUT, an arm's name, or INVITED
    offer: Offer


@dataclass(frozen=True, slots=True)
class Experiment:
    holdout: float  # share of qualifying visitors held out, 0 <= holdout < 1
    arms: tuple[Arm, ...]
    goal: CompiledGoal | None

    def assign(self, global_visit_id: str, strategy: str) -> Assignment:
        """The group of this visitor for this strategy: the same everywhere, every time."""
        u = bucket(global_visit_id, strategy)
        if u < self.holdout:
            return Assignment(True, HOLDOUT, self.arms[0].offer)
        # The rest of [0, 1) is split by weight: the same draw, rescaled, picks the arm.
        u = (u - self.holdout) / (1 - self.holdout)
        total = sum(a.weight for a in self.arms)
        edge = 0.0
        for arm in self.arms:
            edge += arm.weight / total
            if u < edge:
                return Assignment(False, arm.name, arm.offer)
        last = self.arms[-1]
        return Assignment(False, last.name, last.offer)


def bucket(global_visit_id: str, strategy: str) -> float:
    """A stable draw in [0, 1) for a visitor and a strategy (not Python's salted hash())."""
    digest = hashlib.blake2b(f"{strategy}\x00{global_visit_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / HASH_SPAN


def compile_goal(goal: Goal) -> CompiledGoal:
    within_ms = int(goal.within_h * 3_600_000)
    if goal.event is not None:
        name, test = goal.event.name, event_test(goal.event)

        def event_matches(event: Event) -> bool:
            return event.event_name == name and test(event)

        return CompiledGoal(name, event_matches, within_ms, goal.value)
    assert goal.page is not None
    url = text_test(goal.page)

    def page_matches(event: Event) -> bool:
        return event.event_name == "PageEntered" and url(event.url)

    return CompiledGoal("page", page_matches, within_ms, None)


def variant_names(variants: list[Variant]) -> list[str]:
    """Given names, else the invite's name when it tells the arm apart, else v1, v2..."""
    given = {v.name for v in variants if v.name}
    stems = [v.invite.rsplit(".", 1)[0] if v.invite and not v.name else None for v in variants]
    names = []
    for i, (v, stem) in enumerate(zip(variants, stems, strict=True), 1):
        if v.name:
            names.append(v.name)
        elif stem and stems.count(stem) == 1 and stem not in given and stem != HOLDOUT:
            names.append(stem)
        else:
            names.append(f"v{i}")
    return names


def _arm_offer(offer: Offer, v: Variant) -> Offer:
    changes: dict[str, Any] = {
        k: value
        for k in ("invite", "media", "params", "timeout_s")
        if (value := getattr(v, k)) is not None
    }
    return offer.model_copy(update=changes)


def compile_experiment(spec: StrategySpec) -> Experiment | None:
    """None when the strategy runs no experiment (no goal, holdout or variants)."""
    if spec.goal is None and not spec.holdout and not spec.variants:
        return None
    if spec.variants:
        names = variant_names(spec.variants)
        arms = tuple(
            Arm(name, v.weight, _arm_offer(spec.offer, v))
            for name, v in zip(names, spec.variants, strict=True)
        )
    else:
        arms = (Arm(INVITED, 1.0, spec.offer),)
    goal = compile_goal(spec.goal) if spec.goal is not None else None
    return Experiment(spec.holdout / 100, arms, goal)


def arm_of(strategy: CompiledStrategy, global_visit_id: str) -> Assignment:
    """Where a qualifying visitor goes: held out, a variant, or the strategy's own offer."""
    if strategy.experiment is None:
        return Assignment(False, INVITED, strategy.offer)
    return strategy.experiment.assign(global_visit_id, strategy.name)

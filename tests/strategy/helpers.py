"""Real visits built from real events, and strategies compiled from YAML, for the strategy tests.

Times in the tables are seconds after ``T0`` (``at`` for events, ``now`` for evaluations); the
helpers turn them into the engine's epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from engagement.attempts import Attempt, Origin, State
from engagement.strategy.conditions import Ctx, compile_condition
from engagement.strategy.engine import CompiledStrategy
from engagement.strategy.loader import compile_spec
from engagement.strategy.schema import Condition, StrategySpec
from engagement.visits.model import Event, EventType, Visit

T0 = 1_736_500_000_000  # 2025-01-10 09:06:40 UTC, a Friday
SITE = "https://shop.example"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ANDROID_PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X710) Chrome/126.0 Safari/537.36"
SYSTEM = {
    "VisitStarted",
    "PageEntered",
    "PageExited",
    "FocusChanged",
    "UserInfo",
    "SignIn",
    "SignOut",
}


def ms(seconds: float) -> int:
    """Seconds after T0 as engine epoch ms."""
    return T0 + round(seconds * 1000)


def epoch_ms(moment: datetime) -> int:
    assert moment.tzinfo is not None
    return round(moment.timestamp() * 1000)


# -- visits --


@dataclass(frozen=True)
class Step:
    """One tracker event, described; the builder gives it ids and a page."""

    name: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    categories: str = ""
    lang: str = "en-GB"


def start(
    at: float = 0, *, ua: str = DESKTOP, returning: bool = False, lang: str = "en-GB"
) -> Step:
    data = {"userAgent": ua, "returning": returning, "timezoneOffset": -60}
    return Step("VisitStarted", at, data, lang=lang)


def enter(
    path: str,
    at: float = 0,
    *,
    title: str = "",
    referrer: str = "",
    utm: dict[str, str] | None = None,
    cats: str = "",
    lang: str = "en-GB",
) -> Step:
    data = {"title": title, "referrer": referrer, "utm": utm or {}, "focused": True}
    return Step("PageEntered", at, data, url=SITE + path, categories=cats, lang=lang)


def leave(at: float) -> Step:
    return Step("PageExited", at)


def fire(name: str, at: float = 0, data: dict[str, Any] | None = None, *, cats: str = "") -> Step:
    """A business event (or an identity system event) on the current page."""
    return Step(name, at, data or {}, categories=cats)


class VisitBuilder:
    """Applies steps to one Visit with ``Visit.apply``, the way the registry does."""

    def __init__(self, visit_id: str = "V1", global_visit_id: str = "G1") -> None:
        self.visit_id, self.global_visit_id = visit_id, global_visit_id
        self._visit: Visit | None = None
        self._pages = 0
        self._page_entered = False
        self._url = SITE + "/"
        self._count = 0

    @property
    def visit(self) -> Visit:
        assert self._visit is not None, "apply at least one step"
        return self._visit

    def apply(self, *steps: Step) -> list[Event]:
        events = []
        for step in steps:
            # The first PageEntered shares the VisitStarted page; later ones open a new page.
            if self._pages == 0 or (step.name == "PageEntered" and self._page_entered):
                self._pages += 1
                self._page_entered = False
            if step.name == "PageEntered":
                self._page_entered = True
            self._url = step.url or self._url
            self._count += 1
            t = ms(step.at)
            event = Event(
                event_id=f"{self.visit_id}-E{self._count}",
                event_type=EventType.SYSTEM if step.name in SYSTEM else EventType.BUSINESS,
                event_name=step.name,
                visit_id=self.visit_id,
                page_id=f"{self.visit_id}-P{self._pages}",
                global_visit_id=self.global_visit_id,
                timestamp=t,
                server_time=t,
                url=self._url,
                category=step.categories,
                language_code=step.lang,
                data=dict(step.data),
            )
            if self._visit is None:
                self._visit = Visit(self.visit_id, self.global_visit_id, t, t)
            self._visit.apply(event)
            events.append(event)
        return events


def visit_with(*steps: Step, visit_id: str = "V1", global_visit_id: str = "G1") -> Visit:
    builder = VisitBuilder(visit_id, global_visit_id)
    builder.apply(*steps)
    return builder.visit


# -- conditions and strategies --


def as_data(text_or_dict: str | dict[str, Any]) -> Any:
    return yaml.safe_load(text_or_dict) if isinstance(text_or_dict, str) else text_or_dict


def condition(text_or_dict: str | dict[str, Any]) -> Condition:
    return Condition.model_validate(as_data(text_or_dict))


class NoFeed:
    """An availability view whose gate always holds (no feed, treated as open)."""

    def agents(self, group: str, now_ms: int) -> tuple[int, float] | None:
        return None


def verdict(cond: str | dict[str, Any], visit: Visit, now: float) -> tuple[bool, float | None]:
    """The condition's (holds, due) with the due back in seconds after T0."""
    holds, due = compile_condition(condition(cond))(Ctx(visit, ms(now), NoFeed()))
    return holds, None if due is None else (due - T0) / 1000


OFFER = {"invite": "chat.html", "media": "chat"}


def strategy(text_or_dict: str | dict[str, Any], line: int = 1) -> CompiledStrategy:
    data = as_data(text_or_dict)
    data.setdefault("offer", OFFER)
    return compile_spec(StrategySpec.model_validate(data), "test.yaml", line)


def attempt_for(
    visit: Visit,
    strategy_name: str,
    at: float,
    *,
    media: str = "chat",
    states: tuple[State, ...] = (),
) -> Attempt:
    """An attempt created at ``at``; each state in ``states`` is entered one second later."""
    page = visit.current_page
    made = Attempt(
        attempt_id=f"A-{visit.visit_id}-{strategy_name}-{at}",
        visit_id=visit.visit_id,
        global_visit_id=visit.global_visit_id,
        page_id=page.page_id if page else "",
        strategy=strategy_name,
        origin=Origin.STRATEGY,
        invite="chat.html",
        media=media,
        params={},
        timeout_s=30,
        created_at=ms(at),
    )
    for i, state in enumerate(states, start=1):
        made.move(state, ms(at + i))
    return made

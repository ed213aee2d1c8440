"""The strategy file format: what marketers write in strategies/*.yaml, validated here.

A file may hold three top-level keys, each optional:

- ``categories``: name -> list of tags, matched (case-insensitively) in the URL or title of every
  event; the event then carries the category.
- ``events``: business events the tracker raises by itself on a click, a form submit or a timer.
- ``strategies``: when a visit is worth an invitation, and which one.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import constants as C
from ..launchers.registry import Media

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME, max_length=100)]
Seconds = Annotated[float, Field(ge=0, le=86_400 * 366)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- text matching (URL, title, referrer, UTM values) --


class TextMatch(Strict):
    """Exactly one of: ``equals``, ``contains``, ``wildcard`` (``*`` and ``?``), ``regex``.

    A plain string is short for ``contains``. Matching ignores case.
    """

    equals: str | None = None
    contains: str | None = None
    wildcard: str | None = None
    regex: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_string_is_contains(cls, value: Any) -> Any:
        return {"contains": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> TextMatch:
        given = [k for k in ("equals", "contains", "wildcard", "regex") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "write exactly one of equals, contains, wildcard or regex "
                f"(found {', '.join(given) or 'none'})"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} is not valid: {exc}") from exc
        return self


Matches = Annotated[list[TextMatch], Field(min_length=1)]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | dict) else value


class TextCondition(Strict):
    """Any of ``match`` holds and none of ``exclude``."""

    match: Matches | None = None
    exclude: list[TextMatch] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `url: "/pricing"`, `url: {regex: ...}` and `url: [..]` all mean `match`.
        if isinstance(value, str | list):
            return {"match": _as_list(value)}
        if isinstance(value, dict) and not ({"match", "exclude"} & value.keys()):
            return {"match": [value]}
        if isinstance(value, dict) and "match" in value:
            return {**value, "match": _as_list(value["match"])}
        return value


# -- conditions: a strategy's `target` and `when` are built from these --

Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "contains", "exists"]


class EventCondition(Strict):
    """A business (or system) event happened in this visit, with conditions on its data."""

    name: Name
    where: dict[str, dict[Op, Any]] = Field(
        default_factory=dict, description="field -> {op: value}, e.g. price: {gt: 500}"
    )
    count: int = Field(1, ge=1, description="at least this many matching events")

    @field_validator("where")
    @classmethod
    def _ops(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for field, ops in value.items():
            if not ops:
                raise ValueError(f"where.{field} needs an operator, e.g. {{gt: 500}}")
            if "in" in ops and not isinstance(ops["in"], list):
                raise ValueError(f"where.{field}.in needs a list, e.g. [FR, BE]")
        return value


class CategoryCount(Strict):
    name: Name
    count: int = Field(1, ge=1, description="pages seen in the category, at least")


class Hours(Strict):
    """Opening hours per weekday, e.g. ``mon-fri: "09:00-18:00"``, ``sat: "10:00-13:00"``."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _parse_days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{spec!r}: days are mon, tue, wed, thu, fri, sat, sun (e.g. mon-fri)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _parse_span(spec: str) -> tuple[time, time]:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", spec)
    if not m:
        raise ValueError(f"{spec!r}: write hours as HH:MM-HH:MM, e.g. 09:00-18:00")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{spec!r}: not a time of day")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


class Schedule(Strict):
    """When the strategy may fire: weekly hours in a time zone and/or a date range."""

    timezone: str = "UTC"
    hours: list[Hours] = Field(default_factory=list)
    from_date: date | None = Field(None, alias="from")
    until_date: date | None = Field(None, alias="until")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use e.g. Europe/Paris") from exc
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        parsed = []
        for days, spans in value.items():
            for span in _as_list(spans):
                start, end = _parse_span(str(span))
                parsed.append({"days": _parse_days(str(days)), "start": start, "end": end})
        return parsed


class Availability(Strict):
    """The agent group that paces the strategy (docs/pacing.md); with pacing off, a gate on
    the group's last report."""

    group: Name
    min_ready: int | None = Field(
        None, ge=0, description="agents ready, at least (with pacing off: 1 when not set)"
    )
    max_wait_s: Seconds | None = Field(None, description="estimated wait, at most")


class Condition(Strict):
    """One condition, or a combination. Several keys in one item must all hold."""

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")

    url: TextCondition | None = None
    title: TextCondition | None = None
    referrer: TextCondition | None = None
    utm: dict[Literal["source", "medium", "campaign", "term", "content"], TextCondition] | None = (
        None
    )
    language: list[str] | None = Field(None, description="language prefixes, e.g. [fr, en-GB]")
    device: list[Literal["mobile", "tablet", "desktop"]] | None = None
    visitor: Literal["new", "returning"] | None = None
    identity: list[Literal["anonymous", "recognized", "authenticated"]] | None = None
    user: dict[Annotated[str, Field(min_length=1, max_length=100)], dict[Op, Any]] | None = Field(
        None, description="what SignIn/UserInfo said: attribute -> value or {op: value}"
    )

    time_on_page_s: Seconds | None = None
    time_on_site_s: Seconds | None = None
    pages_viewed: int | None = Field(None, ge=1)
    category: CategoryCount | None = None
    categories_in_sequence: Annotated[list[Name], Field(min_length=2)] | None = None
    categories_all: Annotated[list[Name], Field(min_length=2)] | None = None
    event: EventCondition | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("language", "identity", "device", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("user", mode="before")
    @classmethod
    def _user_short(cls, value: Any) -> Any:
        # `tier: gold` means {eq: gold}; `country: [FR, BE]` means {in: [FR, BE]}.
        if not isinstance(value, dict):
            return value
        return {
            k: v if isinstance(v, dict) else {"in": v} if isinstance(v, list) else {"eq": v}
            for k, v in value.items()
        }

    @field_validator("category", mode="before")
    @classmethod
    def _category_short(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("event", mode="before")
    @classmethod
    def _event_short(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("empty condition: write at least one of " + ", ".join(CONDITION_KEYS))
        return self


CONDITION_KEYS = [
    "url", "title", "referrer", "utm", "language", "device", "visitor", "identity", "user",
    "time_on_page_s", "time_on_site_s", "pages_viewed", "category", "categories_in_sequence",
    "categories_all", "event", "all", "any", "not",
]  # fmt: skip


class Limits(Strict):
    per_visit: int = Field(1, ge=1, description="offers of this strategy in one visit")
    per_visitor: int | None = Field(None, ge=1, description="offers to one visitor in `days`")
    days: float = Field(30, gt=0)
    cooldown_after_decline_s: Seconds = 3600
    cooldown_after_chat_s: Seconds = 86_400
    decline_silences: Literal["visitor", "strategy"] = Field(
        "visitor",
        description="after a decline, for cooldown_after_decline_s: no invitation at all to the "
        "visitor (visitor), or none of this strategy (strategy)",
    )
    cooldown_after_callback_s: Seconds = Field(
        86_400, description="no invitation after a callback GMS took, for this long"
    )


class Offer(Strict):
    invite: str = Field(description="template in invites/, e.g. chat.html")
    media: Media
    params: dict[str, Any] = Field(default_factory=dict, description="queue, service...")
    timeout_s: Seconds = Field(
        C.OFFER_TIMEOUT_S, description="the invitation closes by itself after this"
    )

    @field_validator("invite")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _invite_name(value)


def _invite_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", value) or ".." in value:
        raise ValueError(f"invite {value!r} must be a file name in invites/, e.g. chat.html")
    return value


# -- experiments: what success is, a control group, and variants of the offer --


class Goal(Strict):
    """What counts as success after an invitation: a business event or a page, within hours."""

    event: EventCondition | None = Field(None, description="e.g. {name: OrderPlaced, where: ...}")
    page: TextCondition | None = Field(None, description="a page whose URL matches")
    # At most as far back as attempts are kept for limits (30 days): a restart rebuilds open
    # windows from those attempts, and other nodes read a visitor's attempts that long.
    within_h: float = Field(
        24, gt=0, le=24 * C.LEDGER_DAYS, description="hours after the invitation (30 days at most)"
    )
    value: str | None = Field(
        None, max_length=200, description="event data field to sum, e.g. total (event goals)"
    )

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        return {"event": {"name": value}} if isinstance(value, str) else value

    @field_validator("event", mode="before")
    @classmethod
    def _event_short(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Goal:
        if (self.event is None) == (self.page is None):
            raise ValueError("a goal names exactly one of event or page")
        if self.value is not None and self.event is None:
            raise ValueError("value sums a field of the goal event: it needs an event goal")
        return self


class Variant(Strict):
    """One arm of the experiment: what it changes in the strategy's offer, and its weight."""

    name: Name | None = Field(None, description="default: the invite's name, or v1, v2...")
    weight: float = Field(1, gt=0, le=1_000_000)
    invite: str | None = None
    media: Media | None = None
    params: dict[str, Any] | None = Field(None, description="replace the offer's params")
    timeout_s: Seconds | None = None

    @field_validator("invite")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return None if value is None else _invite_name(value)


def _percent(value: Any) -> Any:
    """``10%``, ``"10 %"`` and ``10`` all mean ten percent."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            return float(text)
        except ValueError as exc:
            raise ValueError(f"{value!r}: write a share like 10%") from exc
    return value


class StrategySpec(Strict):
    name: Name
    description: str = ""
    enabled: bool = True
    priority: int = Field(0, description="higher wins when several match")
    target: Condition | None = None
    when: Condition
    schedule: Schedule | None = None
    availability: Availability | None = None
    limits: Limits = Field(default_factory=Limits)
    offer: Offer
    decide: Literal["engine", "external"] = Field(
        "engine", description="external: an outside system answers engage/noengage"
    )
    goal: Goal | None = Field(None, description="what success is, for the experiment report")
    holdout: float = Field(0, ge=0, lt=100, description="percent of qualifying visitors held out")
    variants: list[Variant] = Field(default_factory=list, description="arms splitting the rest")

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout_percent(cls, value: Any) -> Any:
        return _percent(value)

    @model_validator(mode="after")
    def _variant_names(self) -> StrategySpec:
        names = [v.name for v in self.variants if v.name]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"variants: the name {name!r} is used twice")
        return self


class DeclaredEvent(Strict):
    """A business event the tracker raises without site code."""

    name: Name
    trigger: Literal["click", "submit", "timer"]
    selector: str | None = Field(None, max_length=500)
    delay_s: Seconds | None = Field(None, description="timer: focused seconds on the page")
    values: dict[Name, str] = Field(
        default_factory=dict, description="data key -> CSS selector whose text/value is read"
    )

    @model_validator(mode="after")
    def _trigger_needs(self) -> DeclaredEvent:
        if self.trigger in ("click", "submit") and not self.selector:
            raise ValueError(f"trigger {self.trigger} needs a selector, e.g. '#buy-button'")
        if self.trigger == "timer" and self.delay_s is None:
            raise ValueError("trigger timer needs delay_s, e.g. 30")
        return self

    def tracker_config(self) -> dict[str, Any]:
        """How the tracker receives it (see monitoring/tracker/focus.js)."""
        config = {
            "name": self.name,
            "trigger": self.trigger,
            "selector": self.selector,
            "delayMs": None if self.delay_s is None else int(self.delay_s * 1000),
            "values": self.values,
        }
        return {k: v for k, v in config.items() if v}  # every byte of it is in every page


class StrategyFile(Strict):
    categories: dict[Name, Annotated[list[str], Field(min_length=1)]] = Field(default_factory=dict)
    events: list[DeclaredEvent] = Field(default_factory=list)
    strategies: list[StrategySpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("a strategy file holds a mapping with categories, events, strategies")
        return value

"""The engine: which strategy invites a visit, on events and on dues, within its limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engagement.attempts import State
from engagement.availability import AvailabilityBoard, GroupState
from engagement.strategy.engine import (
    CompiledStrategy,
    Engine,
    PythonStrategy,
    StrategySet,
    VisitorLedger,
    blocked_by_limits,
    event_keys,
    from_python,
)
from engagement.strategy.schema import Limits, Offer
from engagement.visits.model import Visit

from .helpers import (
    T0,
    VisitBuilder,
    attempt_for,
    enter,
    epoch_ms,
    fire,
    leave,
    ms,
    start,
    strategy,
    visit_with,
)

DAY = 86_400  # s


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Paris"))  # type: ignore[misc]


def engine_with(
    *specs: str | dict[str, Any] | CompiledStrategy,
    strict: bool = True,
    ledger: VisitorLedger | None = None,
    board: AvailabilityBoard | None = None,
) -> Engine:
    compiled = [s if isinstance(s, CompiledStrategy) else strategy(s) for s in specs]
    return Engine(StrategySet(compiled), board or AvailabilityBoard(), ledger, strict)


def chosen_name(engine: Engine, builder: VisitBuilder, *steps: Any, now: float) -> str | None:
    """Apply the steps, then ask the engine about them as the ingest listener does."""
    events = builder.apply(*steps)
    chosen = engine.on_events(builder.visit, events, ms(now))
    return None if chosen is None else chosen.name


def record(engine: Engine, visit: Visit, name: str, at: float, *states: State, media: str = "chat"):
    """An attempt as Lifecycle.start records it: on the visit and in the visitor ledger."""
    made = attempt_for(visit, name, at, media=media, states=states)
    visit.attempts.append(made)
    engine.ledger.add(made)
    return made


# -- priority and index --

PRIORITY_TABLE = [
    # (strategies as (name, priority, url), expected winner on /pricing)
    ([("low", 1, "/pricing"), ("high", 10, "/pricing"), ("mid", 5, "/pricing")], "high"),
    ([("low", 1, "/pricing"), ("high", 10, "/cart"), ("mid", 5, "/pricing")], "mid"),
    ([("b", 5, "/pricing"), ("a", 5, "/pricing"), ("c", 5, "/pricing")], "a"),  # tie: by name
    ([("neg", -5, "/pricing"), ("zero", 0, "/cart")], "neg"),
    ([("x", 1, "/cart"), ("y", 2, "/checkout")], None),
]


@pytest.mark.parametrize(("specs", "winner"), PRIORITY_TABLE)
def test_highest_priority_wins(specs: list[tuple[str, int, str]], winner: str | None) -> None:
    engine = engine_with(*({"name": n, "priority": p, "when": {"url": u}} for n, p, u in specs))
    assert chosen_name(engine, VisitBuilder(), start(0), enter("/pricing", 0), now=0) == winner


def test_strategy_set_orders_and_indexes() -> None:
    specs = [
        {"name": "buy", "priority": 1, "when": {"event": "Buy"}},
        {"name": "cart", "priority": 9, "when": {"event": "Buy", "url": "/cart"}},
        {"name": "page", "priority": 5, "when": {"url": "/pricing"}},
        {"name": "cat", "priority": 3, "when": {"category": "pricing"}},
    ]
    strategies = StrategySet([strategy(s) for s in specs])
    assert [s.name for s in strategies.strategies] == ["cart", "page", "cat", "buy"]
    assert len(strategies) == 4
    assert [s.name for s in strategies.candidates({"event:Buy"})] == ["cart", "buy"]
    assert [s.name for s in strategies.candidates({"page"})] == ["cart", "page"]
    assert [s.name for s in strategies.candidates({"event:Buy", "page", "category:pricing"})] == [
        "cart",
        "page",
        "cat",
        "buy",
    ]
    assert strategies.candidates({"event:Other", "identity"}) == []


INDEX_TABLE = [
    # (event raised on /pricing, evaluations, chosen)
    (fire("AddToCart", 5), 0, None),  # `url: /pricing` would hold, but is not asked
    (fire("Buy", 5), 1, "on-buy"),
    (fire("Buy", 5, {"price": 10}), 1, "on-buy"),
    (fire("Promo", 5, cats="sale"), 1, None),  # asked; but `category` counts pages seen
    (enter("/sale", 5, cats="sale"), 2, "on-sale"),  # page first, category second
    (fire("FocusChanged", 5, {"focused": False}), 0, None),
    (leave(5), 0, None),
    (enter("/pricing", 5), 1, "on-page"),
    (fire("UserInfo", 5, {"email": "a@b"}), 1, "on-identity"),
]


@pytest.mark.parametrize(("step", "evaluations", "chosen"), INDEX_TABLE)
def test_only_strategies_an_event_can_trigger_are_evaluated(
    step: Any, evaluations: int, chosen: str | None
) -> None:
    engine = engine_with(
        {"name": "on-buy", "when": {"event": "Buy"}},
        {"name": "on-sale", "when": {"category": "sale"}},
        {"name": "on-page", "when": {"url": "/pricing"}},
        {"name": "on-identity", "when": {"identity": "recognized"}},
    )
    builder = VisitBuilder()
    builder.apply(start(0), enter("/pricing", 0))  # seen before the engine was asked
    assert chosen_name(engine, builder, step, now=5) == chosen
    assert engine.evaluations == evaluations


def test_event_keys() -> None:
    builder = VisitBuilder()
    started, entered = builder.apply(start(0), enter("/p", 0, cats="pricing;sale"))
    (signed,) = builder.apply(fire("SignIn", 1))
    (bought,) = builder.apply(fire("Buy", 2, cats="sale"))
    assert event_keys(started) == {"event:VisitStarted", "page"}
    assert event_keys(entered) == {"event:PageEntered", "page", "category:pricing", "category:sale"}
    assert event_keys(signed) == {"event:SignIn", "identity"}
    assert event_keys(bought) == {"event:Buy", "category:sale"}


# -- strict mode and limits --

NO_COOLDOWN = {
    "per_visit": 5,
    "cooldown_after_decline_s": 0,
    "cooldown_after_chat_s": 0,
    "cooldown_after_callback_s": 0,
}
OTHER_ATTEMPT_STATES = [
    ((), True),
    ((State.OFFERED,), True),
    ((State.OFFERED, State.SHOWN), True),
    ((State.OFFERED, State.ACCEPTED), True),
    ((State.OFFERED, State.ACCEPTED, State.LAUNCHED), True),
    ((State.OFFERED, State.ACCEPTED, State.LAUNCHED, State.COMPLETED), False),
    ((State.OFFERED, State.DECLINED), False),
    ((State.OFFERED, State.CLOSED), False),
    ((State.TIMED_OUT,), False),
    ((State.CANCELLED,), False),
    ((State.FAILED,), False),
]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(("states", "live"), OTHER_ATTEMPT_STATES)
def test_strict_mode_one_live_attempt_per_visit(
    states: tuple[State, ...], live: bool, strict: bool
) -> None:
    engine = engine_with(
        {"name": "pricing", "when": {"url": "/pricing"}, "limits": NO_COOLDOWN}, strict=strict
    )
    builder = VisitBuilder()
    builder.apply(start(0), enter("/", 0))
    record(engine, builder.visit, "agent-invite", 1, *states, media="callback")
    blocked = strict and live
    assert engine.busy(builder.visit) is blocked
    got = chosen_name(engine, builder, enter("/pricing", 20), now=20)
    assert got == (None if blocked else "pricing")
    assert engine.evaluations == 1
    # Held back, the strategy that matched says why on the visit.
    held = [(ms(20), "pricing", "strict mode: an engagement is live")] if blocked else None
    assert builder.visit.held_back == held


@pytest.mark.parametrize(
    ("per_visit", "previous", "chosen"),
    [
        (1, ["pricing"], False),
        (1, ["other"], True),
        (1, [], True),
        (2, ["pricing"], True),
        (2, ["pricing", "other", "pricing"], False),
    ],
)
def test_per_visit_limit(per_visit: int, previous: list[str], chosen: bool) -> None:
    limits = {"per_visit": per_visit, "cooldown_after_decline_s": 0, "cooldown_after_chat_s": 0}
    engine = engine_with({"name": "pricing", "when": {"url": "/pricing"}, "limits": limits})
    builder = VisitBuilder()
    builder.apply(start(0), enter("/", 0))
    for i, name in enumerate(previous):
        record(engine, builder.visit, name, 1 + 10 * i, State.TIMED_OUT)
    got = chosen_name(engine, builder, enter("/pricing", 100), now=100)
    assert got == ("pricing" if chosen else None)
    reason = blocked_by_limits(
        engine.strategies.by_name["pricing"], builder.visit, engine.ledger, ms(100)
    )
    assert reason == (None if chosen else "limit per_visit")


@pytest.mark.parametrize(
    ("per_visitor", "days", "gap_days", "same_visitor", "chosen"),
    [
        (1, 7, 3, True, False),
        (1, 7, 8, True, True),
        (2, 7, 3, True, True),
        (1, 7, 3, False, True),
        (1, 0.5, 1, True, True),
        (None, 30, 1, True, True),  # no per_visitor limit: each visit may be invited
    ],
)
def test_per_visitor_limit_across_visits(
    per_visitor: int | None, days: float, gap_days: float, same_visitor: bool, chosen: bool
) -> None:
    limits = {"per_visitor": per_visitor, "days": days, "cooldown_after_chat_s": 0}
    engine = engine_with({"name": "pricing", "when": {"url": "/pricing"}, "limits": limits})
    first = VisitBuilder("V1", "G1")
    assert chosen_name(engine, first, start(0), enter("/pricing", 0), now=0) == "pricing"
    record(
        engine,
        first.visit,
        "pricing",
        0,
        State.OFFERED,
        State.ACCEPTED,
        State.LAUNCHED,
        State.COMPLETED,
    )
    t = gap_days * DAY
    second = VisitBuilder("V2", "G1" if same_visitor else "G2")
    got = chosen_name(engine, second, start(t), enter("/pricing", t), now=t)
    assert got == ("pricing" if chosen else None)
    reason = blocked_by_limits(
        engine.strategies.by_name["pricing"], second.visit, engine.ledger, ms(t)
    )
    assert reason == (None if chosen else "limit per_visitor")


COOLDOWN_TABLE = [
    # (limits, previous attempt: media and states, seconds after it ended, blocked by)
    (
        {"cooldown_after_decline_s": 3600},
        "chat",
        (State.OFFERED, State.DECLINED),
        60,
        "cooldown_after_decline",
    ),
    (
        {"cooldown_after_decline_s": 3600},
        "chat",
        (State.OFFERED, State.DECLINED),
        3599,
        "cooldown_after_decline",
    ),
    ({"cooldown_after_decline_s": 3600}, "chat", (State.OFFERED, State.DECLINED), 3601, None),
    (
        {"cooldown_after_decline_s": 60},
        "callback",
        (State.OFFERED, State.DECLINED),
        30,
        "cooldown_after_decline",
    ),
    ({"cooldown_after_decline_s": 0}, "chat", (State.OFFERED, State.DECLINED), 1, None),
    # decline_silences: strategy: a decline of another strategy does not silence this one.
    (
        {"cooldown_after_decline_s": 3600, "decline_silences": "strategy"},
        "chat",
        (State.OFFERED, State.DECLINED),
        60,
        None,
    ),
    ({"cooldown_after_decline_s": 3600}, "chat", (State.OFFERED, State.CLOSED), 60, None),
    ({"cooldown_after_decline_s": 3600}, "chat", (State.TIMED_OUT,), 60, None),
    (
        {"cooldown_after_chat_s": 86_400},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.LAUNCHED, State.COMPLETED),
        3600,
        "cooldown_after_chat",
    ),
    (
        {"cooldown_after_chat_s": 86_400},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.LAUNCHED, State.COMPLETED),
        86_401,
        None,
    ),
    (
        {"cooldown_after_chat_s": 600},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.LAUNCHED, State.COMPLETED),
        599,
        "cooldown_after_chat",
    ),
    (
        {"cooldown_after_chat_s": 86_400, "cooldown_after_callback_s": 0},
        "callback",
        (State.OFFERED, State.ACCEPTED, State.COMPLETED),
        3600,
        None,
    ),
    # A callback GMS took starts its own cool-down (not the chat's).
    (
        {"cooldown_after_chat_s": 0, "cooldown_after_callback_s": 7200},
        "callback",
        (State.OFFERED, State.ACCEPTED, State.COMPLETED),
        3600,
        "cooldown_after_callback",
    ),
    (
        {"cooldown_after_chat_s": 0, "cooldown_after_callback_s": 7200},
        "callback",
        (State.OFFERED, State.ACCEPTED, State.COMPLETED),
        7201,
        None,
    ),
    (
        {"cooldown_after_callback_s": 7200},
        "callback",
        (State.OFFERED, State.ACCEPTED, State.FAILED),
        60,
        None,
    ),
    (
        {"cooldown_after_chat_s": 86_400},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.FAILED),
        3600,
        None,
    ),
    # A chat still open, or one that failed once open, counts from its launch.
    (
        {"cooldown_after_chat_s": 600},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.LAUNCHED),
        60,
        "cooldown_after_chat",
    ),
    (
        {"cooldown_after_chat_s": 600},
        "chat",
        (State.OFFERED, State.ACCEPTED, State.LAUNCHED, State.FAILED),
        60,
        "cooldown_after_chat",
    ),
]


@pytest.mark.parametrize(("limits", "media", "states", "after", "blocked"), COOLDOWN_TABLE)
def test_cooldowns(
    limits: dict[str, Any], media: str, states: tuple[State, ...], after: float, blocked: str | None
) -> None:
    """A visitor who declined (or chatted) is left alone for a while, whatever the strategy."""
    engine = engine_with({"name": "pricing", "when": {"url": "/pricing"}, "limits": limits})
    earlier = VisitBuilder("V1", "G1")
    earlier.apply(start(0), enter("/", 0))
    record(engine, earlier.visit, "another-strategy", 0, *states, media=media)
    ended = len(states)  # attempt_for enters each state one second after the previous
    t = ended + after
    later = VisitBuilder("V2", "G1")
    got = chosen_name(engine, later, start(t), enter("/pricing", t), now=t)
    assert got == (None if blocked else "pricing")
    reason = blocked_by_limits(
        engine.strategies.by_name["pricing"], later.visit, engine.ledger, ms(t)
    )
    assert reason == (f"limit {blocked}" if blocked else None)
    # The visit records why the strategy that matched did not invite.
    held = [(ms(t), "pricing", f"limit {blocked}")] if blocked else None
    assert later.visit.held_back == held


def test_ledger_forgets_old_attempts() -> None:
    ledger = VisitorLedger()
    visit = visit_with(start(0), enter("/", 0))
    old, new = attempt_for(visit, "a", 0), attempt_for(visit, "b", 100)
    ledger.add(old)
    ledger.add(new)
    assert ledger.of("G1") == [old, new]
    ledger.forget_before(ms(50))
    assert ledger.of("G1") == [new]
    ledger.forget_before(ms(200))
    assert ledger.of("G1") == []
    assert ledger.by_visitor == {}


def test_ledger_forgets_a_slice_of_visitors() -> None:
    ledger = VisitorLedger()
    first, second = visit_with(start(0), enter("/", 0)), visit_with(start(0), enter("/", 0))
    second.global_visit_id = "G2"
    a, b = attempt_for(first, "a", 0), attempt_for(second, "b", 0)
    ledger.add(a)
    ledger.add(b)
    assert ledger.forget_before(ms(50), ["G2", "unknown"]) == 1
    assert ledger.by_visitor == {"G1": [a]}


# -- dues: conditions that ripen while the visitor just sits there --

SIT_ON_PRICING = {"name": "pricing-30s", "when": {"url": "/pricing", "time_on_page_s": 30}}
DUE_TABLE = [
    # (what the visitor does after entering /pricing at 0, first on_due time that offers)
    ([], 30),
    ([fire("Scroll", 10, {"depth": 50})], 30),
    ([fire("FocusChanged", 10, {"focused": False})], 30),  # dwell, not focus
    ([leave(10)], None),
    ([enter("/about", 10)], None),
    ([enter("/about", 10), enter("/pricing", 20)], 50),
    ([enter("/pricing", 10)], 40),  # a reload is a new page: dwell starts again
]


@pytest.mark.parametrize(("after", "offered_at"), DUE_TABLE)
def test_due_offers_after_time_on_page(after: list[Any], offered_at: float | None) -> None:
    engine = engine_with(SIT_ON_PRICING)
    builder = VisitBuilder()
    assert chosen_name(engine, builder, start(0), enter("/pricing", 0), now=0) is None
    assert engine.pending_dues == 1
    for step in after:
        assert chosen_name(engine, builder, step, now=step.at) is None
    visits = {builder.visit.visit_id: builder.visit}
    first = None
    for now in [0, 10, 29.999, 30, 30.5, 39.999, 40, 49.999, 50, 60, 600]:
        decided = engine.on_due(ms(now), visits)
        assert all(v is builder.visit and s.name == "pricing-30s" for v, s in decided)
        if decided and first is None:
            first = now
        elif decided:
            pytest.fail(f"offered twice, at {first} and {now}")
    assert first == offered_at
    assert engine.pending_dues == 0


def test_due_skips_closed_and_busy_visits() -> None:
    engine = engine_with(SIT_ON_PRICING)
    gone, busy, idle = VisitBuilder("V1", "G1"), VisitBuilder("V2", "G2"), VisitBuilder("V3", "G3")
    for i, b in enumerate([gone, busy, idle]):
        assert chosen_name(engine, b, start(i), enter("/pricing", i), now=i) is None
    assert engine.pending_dues == 3
    record(engine, busy.visit, "agent", 5)  # live: strict mode holds the visit
    live = {v.visit.visit_id: v.visit for v in (busy, idle)}  # V1 was closed meanwhile
    assert engine.on_due(ms(31), live) == []
    assert [(v.visit_id, s.name) for v, s in engine.on_due(ms(32), live)] == [("V3", "pricing-30s")]
    assert engine.on_due(ms(100), live) == []


def test_due_offers_once_per_visit_in_one_pass() -> None:
    engine = engine_with(
        SIT_ON_PRICING,
        {"name": "pricing-20s", "when": {"url": "/pricing", "time_on_page_s": 20}},
    )
    builder = VisitBuilder()
    assert chosen_name(engine, builder, start(0), enter("/pricing", 0), now=0) is None
    decided = engine.on_due(ms(40), {"V1": builder.visit})
    assert [s.name for _, s in decided] == ["pricing-20s"]


def test_due_through_schedule_and_availability() -> None:
    """Dwell done after closing time: asked again at Monday's opening, then when agents are free."""
    friday_evening = (epoch_ms(paris(2025, 1, 10, 17, 59, 50)) - T0) / 1000
    monday_open = (epoch_ms(paris(2025, 1, 13, 9, 0)) - T0) / 1000
    board = AvailabilityBoard()
    engine = engine_with(
        {
            "name": "office",
            "when": {"url": "/pricing", "time_on_page_s": 30},
            "schedule": {"timezone": "Europe/Paris", "hours": {"mon-fri": "09:00-18:00"}},
            "availability": {"group": "sales"},
        },
        board=board,
    )
    builder = VisitBuilder()
    t = friday_evening
    assert chosen_name(engine, builder, start(t), enter("/pricing", t), now=t) is None
    visits = {"V1": builder.visit}
    assert engine.on_due(ms(t + 29), visits) == []
    assert engine.on_due(ms(t + 30), visits) == []  # dwell done, but the office closed at 18:00
    assert engine._scheduled == {("V1", "office"): ms(monday_open)}
    assert builder.visit.held_back == [(ms(t + 30), "office", "schedule: outside its hours")]
    board.report("sales", GroupState(0, 0, ms(monday_open - 60)))
    assert engine.on_due(ms(monday_open), visits) == []  # open, nobody ready: every 5 s
    assert builder.visit.held_back == [
        (ms(t + 30), "office", "schedule: outside its hours"),
        (ms(monday_open), "office", "availability: group sales closed or too few agents ready"),
    ]
    board.report("sales", GroupState(1, 0, ms(monday_open + 1)))
    assert engine.on_due(ms(monday_open + 4.999), visits) == []
    assert [s.name for _, s in engine.on_due(ms(monday_open + 5), visits)] == ["office"]


def test_due_prefers_the_higher_priority_strategy() -> None:
    # Both hold at 30 s; `gold` (priority 10) was scheduled later (after its Promo event), yet
    # it wins: dues of one visit are evaluated by priority, not in the order they were set.
    engine = engine_with(
        {"name": "plain", "priority": 1, "when": {"url": "/pricing", "time_on_page_s": 30}},
        {
            "name": "gold",
            "priority": 10,
            "when": {"url": "/pricing", "time_on_page_s": 30, "event": "Promo"},
        },
    )
    builder = VisitBuilder()
    assert chosen_name(engine, builder, start(0), enter("/pricing", 0), now=0) is None
    assert chosen_name(engine, builder, fire("Promo", 5), now=5) is None
    assert [s.name for _, s in engine.on_due(ms(30), {"V1": builder.visit})] == ["gold"]


# -- strategies written in Python --


class BigCart:
    """Invite when the cart is worth more than 1000."""

    name = "big-cart"
    priority = 50
    triggers = frozenset({"event:CartUpdated"})
    offer = Offer(invite="chat.html", media="chat", params={"queue": "sales"})
    limits = Limits(per_visit=2)

    def evaluate(self, visit: Visit, now_ms: int) -> bool | float:
        carts = visit.events_by_name.get("CartUpdated", [])
        return bool(carts) and float(carts[-1].data.get("total", 0)) > 1000


class Patient:
    name = "patient"
    priority = 0
    triggers = frozenset({"page"})
    offer = Offer(invite="callback.html", media="callback")

    def evaluate(self, visit: Visit, now_ms: int) -> bool | float:
        left = 20 - visit.time_on_site_s(now_ms)
        return True if left <= 0 else left


def test_python_strategy_protocol_and_compilation() -> None:
    assert isinstance(BigCart(), PythonStrategy)
    assert not isinstance(object(), PythonStrategy)
    compiled = from_python(BigCart(), "strategies/cart.py")
    assert (compiled.name, compiled.priority, compiled.keys, compiled.source) == (
        "big-cart",
        50,
        frozenset({"event:CartUpdated"}),
        "strategies/cart.py",
    )
    assert compiled.limits.per_visit == 2
    assert compiled.description == "Invite when the cart is worth more than 1000."
    assert from_python(Patient(), "p.py").limits == Limits()


@pytest.mark.parametrize(
    ("total", "chosen"), [(500, "yaml-cart"), ("1500", "big-cart"), (1000, "yaml-cart")]
)
def test_python_strategy_in_the_engine(total: Any, chosen: str) -> None:
    engine = engine_with(
        from_python(BigCart(), "cart.py"),
        {"name": "yaml-cart", "priority": 1, "when": {"event": "CartUpdated"}},
    )
    builder = VisitBuilder()
    builder.apply(start(0), enter("/cart", 0))
    assert chosen_name(engine, builder, fire("CartUpdated", 1, {"total": total}), now=1) == chosen


def test_python_strategy_asks_again_after_its_seconds() -> None:
    engine = engine_with(from_python(Patient(), "patient.py"))
    builder = VisitBuilder()
    assert chosen_name(engine, builder, start(0), enter("/", 0), now=0) is None
    assert chosen_name(engine, builder, enter("/b", 5), now=5) is None  # asks again at 20
    assert engine._scheduled == {("V1", "patient"): ms(20)}
    assert engine.on_due(ms(19.999), {"V1": builder.visit}) == []
    assert [s.name for _, s in engine.on_due(ms(20), {"V1": builder.visit})] == ["patient"]


class Impatient:
    """Answers 0 s ("ask again now") - and counts how often it is asked."""

    name = "impatient"
    priority = 0
    triggers = frozenset({"page"})
    offer = Offer(invite="chat.html", media="chat")

    def __init__(self) -> None:
        self.asked = 0

    def evaluate(self, visit: Visit, now_ms: int) -> bool | float:
        self.asked += 1
        if self.asked > 100:
            raise RuntimeError("on_due keeps asking: it would loop forever")
        return 0


def test_python_strategy_due_now_does_not_loop() -> None:
    impatient = Impatient()
    engine = engine_with(from_python(impatient, "impatient.py"))
    builder = VisitBuilder()
    assert chosen_name(engine, builder, start(0), enter("/", 0), now=0) is None
    engine.on_due(ms(1), {"V1": builder.visit})
    assert impatient.asked <= 3


# -- categories --

CATEGORIES = {"pricing": ["pricing", "Tarifs"], "support": ["help", "FAQ"], "tv": ["television"]}


@pytest.mark.parametrize(
    ("url", "title", "expected"),
    [
        ("https://shop.example/pricing", "", ["pricing"]),
        ("https://shop.example/fr/TARIFS", "", ["pricing"]),
        ("https://shop.example/x", "Help center", ["support"]),
        ("https://shop.example/faq", "Our PRICING", ["pricing", "support"]),
        ("https://shop.example/television/pricing", "Need help?", ["pricing", "support", "tv"]),
        ("https://shop.example/", "Home", []),
        ("", "", []),
    ],
)
def test_categorize(url: str, title: str, expected: list[str]) -> None:
    assert StrategySet((), CATEGORIES).categorize(url, title) == expected


def test_categorize_without_categories() -> None:
    assert StrategySet().categorize("https://shop.example/pricing", "Pricing") == []


@pytest.mark.parametrize(
    ("sent", "url", "title", "expected"),
    [
        ("", "https://shop.example/faq", "Our PRICING", "pricing;support"),
        ("sale", "https://shop.example/pricing", "", "sale;pricing"),
        ("pricing;;sale", "https://shop.example/pricing", "", "pricing;sale"),  # each once
        ("a;;b", "https://shop.example/", "Home", "a;;b"),  # none matched: as it was sent
    ],
)
def test_stamp_adds_the_matched_categories_to_the_sent_ones(
    sent: str, url: str, title: str, expected: str
) -> None:
    strategies = StrategySet((), CATEGORIES)
    assert strategies.stamp(sent, url, title) == expected
    assert strategies.stamp(sent, url, title) is strategies.stamp(sent, url, title)  # shared


def test_stamp_without_categories_keeps_what_was_sent() -> None:
    assert StrategySet().stamp("sale", "https://shop.example/pricing", "Pricing") == "sale"

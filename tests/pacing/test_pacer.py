"""The pacer on an injected clock: who is invited, who waits, and what it learns."""

from __future__ import annotations

import itertools

from engagement.attempts import Attempt, Origin, State
from engagement.availability import AvailabilityBoard, GroupState, WhenStale
from engagement.pacing.counters import PRIOR_WEIGHT, LocalCounters
from engagement.pacing.model import PRIOR_ACCEPTANCE, Channel, GroupConfig
from engagement.pacing.pacer import Pacer, PacingConfig

T0 = 1_700_000_000_000
_ids = itertools.count()


def attempt(strategy: str = "s", at: int = T0) -> Attempt:
    return Attempt(f"A{next(_ids)}", "V", "G", "P", strategy, Origin.STRATEGY, "chat.html",
                   "chat", {}, 30.0, at)  # fmt: skip


def pacer(ready: int = 1, busy: int = 0, at: int = T0, **board: object) -> Pacer:
    b = AvailabilityBoard(**board)  # type: ignore[arg-type]
    b.report("sales", GroupState(ready, 0.0, at, agents_busy=busy))
    return Pacer(PacingConfig(), b, LocalCounters())


def admit_all(p: Pacer, attempts: list[Attempt], now: int) -> list[Attempt]:
    released = []
    for a in attempts:
        released += p.admit(a, "sales", 0, now)
        if a.state is State.DETECTED and a not in released:
            a.move(State.PACED, now)
    for a in released:
        a.move(State.OFFERED, now)
    return released


def test_thirty_at_once_with_one_agent_ready_get_one_invitation() -> None:
    p = pacer(ready=1)
    crowd = [attempt() for _ in range(30)]
    released = admit_all(p, crowd, T0)
    assert released == crowd[:1]
    assert [a.state for a in crowd[1:]] == [State.PACED] * 29
    assert p.waiting("sales") == 29


def test_nobody_ready_nobody_invited_until_an_agent_frees_up() -> None:
    p = pacer(ready=0, busy=1)
    crowd = [attempt() for _ in range(3)]
    assert admit_all(p, crowd, T0) == []
    assert p.refresh(T0 + 2_000) == []
    p.board.report("sales", GroupState(1, 0.0, T0 + 3_000, agents_busy=0))
    assert p.refresh(T0 + 3_000) == []  # within the refresh period of the last look
    assert p.refresh(T0 + 4_000) == crowd[:1]


def test_highest_priority_then_longest_waiting_goes_first() -> None:
    p = pacer(ready=0)
    old, new, vip = attempt(), attempt(), attempt()
    for a, priority, at in ((old, 0, T0), (new, 0, T0 + 10), (vip, 5, T0 + 20)):
        p.admit(a, "sales", priority, at)
        a.move(State.PACED, at)
    p.board.report("sales", GroupState(4, 0.0, T0 + 30))
    assert p.refresh(T0 + 5_000)[:3] == [vip, old, new]


def test_a_strategy_gate_holds_only_its_own_visitors() -> None:
    p = pacer(ready=1)
    picky, easy = attempt(), attempt()
    assert p.admit(picky, "sales", 9, T0, min_ready=2) == []
    picky.move(State.PACED, T0)
    assert p.admit(easy, "sales", 0, T0) == [easy]


def test_stale_report_is_closed_by_default_and_open_when_set() -> None:
    closed = pacer(ready=5, at=T0 - 61_000)
    assert closed.admit(attempt(), "sales", 0, T0) == []
    assert closed.plan("sales", T0).state == "stale"
    open_ = pacer(ready=0, at=T0 - 61_000, when_stale=WhenStale.OPEN)
    crowd = [attempt() for _ in range(5)]
    assert admit_all(open_, crowd, T0) == crowd
    unreported = Pacer(PacingConfig(), AvailabilityBoard(), LocalCounters())
    assert unreported.admit(attempt(), "sales", 0, T0) == []
    assert unreported.plan("sales", T0).state == "unreported"


def test_in_flight_counts_until_answered_and_connected() -> None:
    p = pacer(ready=1)
    a = attempt()
    admit_all(p, [a], T0)
    assert p.plan("sales", T0).pending.invited == (PRIOR_ACCEPTANCE,)
    a.move(State.ACCEPTED, T0 + 4_000)
    plan = p.plan("sales", T0 + 4_000)
    assert (plan.pending.invited, plan.pending.accepted) == ((), 1)
    a.move(State.LAUNCHED, T0 + 5_000)
    assert p.plan("sales", T0 + 5_000).pending.accepted == 1  # the feed has not seen it yet
    p.board.report("sales", GroupState(0, 0.0, T0 + 6_000, agents_busy=1))
    assert p.plan("sales", T0 + 6_000).pending.accepted == 0


def test_acceptance_and_answer_time_are_learnt_per_strategy() -> None:
    p = pacer(ready=1000)
    answers = [attempt("yes") for _ in range(30)] + [attempt("no") for _ in range(30)]
    admit_all(p, answers, T0)
    for a in answers:
        a.move(State.ACCEPTED if a.strategy == "yes" else State.DECLINED, T0 + 6_000)
    p.plan("sales", T0 + 6_000)  # reads the answers
    yes, no = p.counters.acceptance("sales", "yes"), p.counters.acceptance("sales", "no")
    assert yes.mean > 0.6 > PRIOR_ACCEPTANCE > 0.15 > no.mean
    assert yes.observations < 30 + PRIOR_WEIGHT  # older answers weigh less
    assert 6.0 < p.counters.answer_time("sales").mean < 10.0  # prior 10 s pulled towards 6 s


def test_counters_refuse_a_stale_version() -> None:
    c = LocalCounters()
    version = c.pending("sales").version
    assert c.invite("sales", "A", 0.3, version)
    assert not c.invite("sales", "B", 0.3, version)  # another node invited meanwhile
    assert c.pending("sales").invited == (0.3,)


def test_reactive_state_over_groups_of_a_channel() -> None:
    board = AvailabilityBoard()
    board.report("chat-a", GroupState(1, 0.0, T0))
    board.report("chat-b", GroupState(0, 0.0, T0, agents_busy=1))
    board.report("calls", GroupState(1, 0.0, T0))
    config = PacingConfig({"calls": GroupConfig(channel=Channel.WEBCALLBACK)})
    p = Pacer(config, board, LocalCounters())
    assert p.reactive_state(Channel.CHAT, ["chat-b"], T0) == 0.0
    assert p.reactive_state(Channel.CHAT, [], T0) == 1.0
    assert p.reactive_state(Channel.WEBCALLBACK, [], T0) == 1.0
    assert p.reactive_state(Channel.WEBCALLBACK, ["chat-a"], T0) == 0.0  # not of that channel


def test_two_nodes_sharing_the_counters_pace_together() -> None:
    board, counters = AvailabilityBoard(), LocalCounters()
    board.report("sales", GroupState(1, 0.0, T0))
    node_a = Pacer(PacingConfig(), board, counters)
    node_b = Pacer(PacingConfig(), board, counters)
    first, second = attempt(), attempt()
    assert node_a.admit(first, "sales", 0, T0) == [first]
    first.move(State.OFFERED, T0)
    assert node_b.admit(second, "sales", 0, T0) == []  # node A's invitation fills the slot
    assert node_b.plan("sales", T0).pending.invited == (PRIOR_ACCEPTANCE,)


def test_estimates_start_from_the_recorded_attempts() -> None:
    p = pacer(ready=1)
    recorded = []
    for i, answer in enumerate(["accepted"] * 12 + ["declined"] * 4 + ["timed_out", "offered"]):
        a = attempt("cart", at=T0 + i)
        a.move(State.OFFERED, T0 + i)
        if answer != "offered":
            a.move(State(answer), T0 + i + 4_000)
        recorded.append(a)
    recorded.append(attempt("other"))  # a strategy that names no group: not read
    groups = {"cart": "sales"}
    assert p.learn_from(recorded, groups.get) == 17  # the unanswered one is not read either
    rate = p.counters.acceptance("sales", "cart")
    assert rate.mean > PRIOR_ACCEPTANCE
    assert 4.0 < p.counters.answer_time("sales").mean < 10.0

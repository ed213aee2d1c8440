"""Every attempt ends, server side: the owner's deadlines on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from engagement.attempts import State
from engagement.availability import AvailabilityBoard, GroupState
from engagement.lifecycle.transitions import PageCode
from engagement.pacing.counters import LocalCounters
from engagement.pacing.pacer import Pacer, PacingConfig
from tests.lifecycle.conftest import TIMEOUTS, World, make_world
from tests.lifecycle.test_transitions import REACH, REACHED, record
from tests.strategy.helpers import T0, enter, fire, ms

C = PageCode

# (state reached at 1-3 s, the page's later news as (seconds, code), when the clock is
# looked at, the transition that ends it then (None: still live)).
DEADLINES: list[tuple[State, list[tuple[float, PageCode]], float, Any]] = [
    (State.OFFERED, [], 29, None),
    (State.OFFERED, [], 30, ("timed_out", 30, "no answer while offered")),
    # Shown: the page's own timeout (30 s) and a grace of 5 s.
    (State.SHOWN, [], 35, None),
    (State.SHOWN, [], 36, ("timed_out", 36, "no answer while shown")),
    # Filling the invitation's form holds it for 120 s.
    (State.SHOWN, [(20, C.INTERACTING)], 139, None),
    (State.SHOWN, [(20, C.INTERACTING)], 140, ("timed_out", 140, "no answer while shown")),
    # Accepted, the tab closed before the chat opened: failed after 120 s.
    (State.ACCEPTED, [], 121, None),
    (State.ACCEPTED, [], 122, ("failed", 122, "accepted, never launched in 120 s")),
    # Launched, no end ever reported: completed after an hour with no news.
    (State.LAUNCHED, [], 3602, None),
    (State.LAUNCHED, [], 3603, ("completed", 3603, "no news of its end in 3600 s")),
    # Each sign of life (a restore on another page, an agent) starts the hour again.
    (State.LAUNCHED, [(3000, C.RESTORED)], 6599, None),
    (State.LAUNCHED, [(3000, C.RESTORED)], 6600,
     ("completed", 6600, "no news of its end in 3600 s")),
    (State.LAUNCHED, [(100, C.AGENT_CONNECTED)], 3700,
     ("completed", 3700, "no news of its end in 3600 s")),
    # A failed request to the chat server is no sign of life, nor an end.
    (State.LAUNCHED, [(100, C.ERROR)], 3602, None),
    (State.LAUNCHED, [(100, C.ERROR)], 3603, ("completed", 3603, "no news of its end in 3600 s")),
]  # fmt: skip


@pytest.mark.parametrize(("start", "news", "now", "ended"), DEADLINES)
async def test_deadline(
    world: World, start: State, news: list[tuple[float, PageCode]], now: float, ended: Any
):
    attempt = world.new_attempt()
    for second, code in enumerate(REACH[start], start=1):
        world.clock.at(second)
        await world.owner.page_reported(attempt, code)
    for second, code in news:
        world.clock.at(second)
        await world.owner.page_reported(attempt, code)
    world.owner.tick(world.clock.at(now))
    # The news changes no state; an agent's arrival is kept on the attempt.
    agent = [ms(t) for t, c in news if c is C.AGENT_CONNECTED]
    handoff = {"agentConnectedAt": agent[-1]} if agent else {}
    expected = [*REACHED[start], *([ended] if ended else [])]
    assert attempt.as_json() == record(attempt.attempt_id, expected, **handoff)


async def test_strict_mode_never_holds_a_visit_for_ever():
    """Whatever the page last said (or if it went silent), the visit can be invited again."""
    world = make_world(
        [
            "{name: chat-me, when: {event: WantChat}, "
            "limits: {per_visit: 10, cooldown_after_chat_s: 0, cooldown_after_decline_s: 0}}"
        ]
    )
    silent_after = [REACH[s] for s in (State.OFFERED, State.SHOWN, State.ACCEPTED, State.LAUNCHED)]
    for i, codes in enumerate(silent_after):
        t0 = i * 10_000
        world.clock.at(t0)
        (attempt,) = world.owner.decide(world.events(fire("WantChat", t0)))
        for second, code in enumerate(codes, start=1):
            world.clock.at(t0 + second)
            await world.owner.page_reported(attempt, code)
        world.clock.at(t0 + 5)
        # Busy: strict mode holds the visit while the attempt lives.
        assert world.owner.decide(world.events(fire("WantChat", t0 + 5))) == []
        # The page goes silent; the clock runs past every deadline of the owner.
        longest = max(TIMEOUTS.offered_s, TIMEOUTS.accepted_s, TIMEOUTS.launched_s)
        world.owner.tick(world.clock.at(t0 + 5 + longest + TIMEOUTS.shown_grace_s + 30))
        assert not attempt.live, attempt.as_json()
        assert not world.engine.busy(world.visit)


async def test_an_accepted_attempt_whose_request_is_queued_waits_for_its_delivery(
    world: World,
):
    """A callback stored in the outbox while GMS is down: not failed at accepted_s; failed at
    queued_s if no delivery's answer ever came (the outbox gives up before)."""
    attempt = world.new_attempt()
    for second, code in enumerate(REACH[State.ACCEPTED], start=1):
        world.clock.at(second)
        await world.owner.page_reported(attempt, code)
    world.clock.at(3)
    world.owner.queued(attempt, requestID="R1")
    handoff = {"requestID": "R1", "queuedAt": ms(3)}
    world.owner.tick(world.clock.at(1002.999))
    assert attempt.as_json() == record(attempt.attempt_id, REACHED[State.ACCEPTED], **handoff)
    world.owner.tick(world.clock.at(1003))
    ended = ("failed", 1003, "queued, never delivered in 1000 s")
    assert attempt.as_json() == record(
        attempt.attempt_id, [*REACHED[State.ACCEPTED], ended], **handoff
    )


async def test_after_a_restart_a_queued_attempt_still_waits_for_its_delivery(world: World):
    attempt = world.new_attempt()
    for second, code in enumerate(REACH[State.ACCEPTED], start=1):
        world.clock.at(second)
        await world.owner.page_reported(attempt, code)
    world.owner.queued(attempt, requestID="R1")
    restarted = make_world()
    restarted.clock.at(10)
    restarted.owner.load_ledger([attempt])
    restarted.owner.tick(restarted.clock.at(10 + TIMEOUTS.accepted_s + 1))
    assert attempt.state is State.ACCEPTED
    restarted.owner.tick(restarted.clock.at(10 + TIMEOUTS.queued_s))
    assert attempt.transitions[-1] == ("failed", ms(1010), "queued, never delivered in 1000 s")


NEVER_OFFERED = [
    # An outside decision-maker that never answers engage / noengage.
    ("{name: ask-crm, decide: external, when: {event: WantChat}, limits: {per_visit: 10}}",
     "detected", 30, "no answer while detected"),
    # Its agent group never has room.
    ("{name: sales, when: {event: WantChat}, availability: {group: sales}, "
     "limits: {per_visit: 10}}", "paced", 120, "no answer while paced"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "state", "ends_s", "reason"), NEVER_OFFERED)
async def test_an_attempt_never_offered_does_not_hold_the_visit_either(
    text: str, state: str, ends_s: float, reason: str
):
    world = make_world([text])
    board = AvailabilityBoard()
    board.report("sales", GroupState(0, 0.0, T0, agents_busy=1))
    world.owner.pacer = Pacer(PacingConfig(), board, LocalCounters())
    world.owner.paced_wait_s = 120
    (attempt,) = world.owner.decide(world.events(fire("WantChat", 0)))
    assert attempt.state.value == state
    world.clock.at(1)
    assert world.owner.decide(world.events(fire("WantChat", 1))) == []  # strict mode holds it
    world.owner.tick(world.clock.at(ends_s - 0.001))
    assert attempt.state.value == state
    world.owner.tick(world.clock.at(ends_s))
    assert attempt.transitions[-1] == ("timed_out", ms(ends_s), reason)
    assert not world.engine.busy(world.visit)
    world.clock.at(ends_s + 1)
    (again,) = world.owner.decide(world.events(fire("WantChat", ends_s + 1)))
    assert again.state.value == state


async def test_a_visit_whose_chat_ended_on_another_page_can_be_invited_again():
    world = make_world(
        ["{name: chat-me, when: {event: WantChat}, "
         "limits: {per_visit: 2, cooldown_after_chat_s: 0}}"]
    )  # fmt: skip
    (attempt,) = world.owner.decide(world.events(fire("WantChat", 0)))
    await world.owner.page_reported(attempt, C.ACCEPTED)
    await world.owner.page_reported(attempt, C.LAUNCHED)
    world.events(enter("/two", 10), enter("/three", 20))
    world.clock.at(20)
    await world.owner.page_reported(attempt, C.RESTORED)
    await world.owner.page_reported(attempt, C.COMPLETED)
    world.clock.at(30)
    (again,) = world.owner.decide(world.events(fire("WantChat", 30)))
    assert again.page_id == "V1-P3"

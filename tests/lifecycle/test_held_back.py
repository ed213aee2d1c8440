"""Why a visitor was not invited: a strategy that matched but was held back says so on the
visit, whether an event or the timer (a condition that ripened with time) asked it."""

from __future__ import annotations

from engagement.attempts import State
from engagement.lifecycle.transitions import PageCode
from tests.lifecycle.conftest import make_world
from tests.strategy.helpers import enter, fire, ms


async def test_a_strategy_ripening_during_a_live_engagement_says_strict_mode_held_it():
    world = make_world(
        [
            "{name: dwell, priority: 10, when: {all: [{url: /pricing}, {time_on_page_s: 30}]}}",
            "{name: chat-me, priority: 50, when: {event: WantChat}}",
        ]
    )
    world.clock.at(1)
    assert world.owner.decide(world.events(enter("/pricing", 1))) == []  # due at 31 s
    world.clock.at(5)
    (attempt,) = world.owner.decide(world.events(fire("WantChat", 5)))
    await world.owner.page_reported(attempt, PageCode.ACCEPTED)

    world.owner.tick(world.clock.at(40))  # dwell's time came while the chat is accepted
    assert attempt.state is State.ACCEPTED
    assert world.visit.attempts == [attempt]
    assert world.visit.held_back == [(ms(40), "dwell", "strict mode: an engagement is live")]

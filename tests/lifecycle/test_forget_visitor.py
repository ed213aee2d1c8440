"""A visitor's erasure in the owner: nothing of their attempts stays in the strategies'
schedule or the pacer until its next tick (and an accepted invitation no longer counts
against its agent group for ever)."""

from __future__ import annotations

from engagement.attempts import State
from engagement.lifecycle.transitions import PageCode
from engagement.pacing.pacer import Pacer
from tests.lifecycle.conftest import World, make_world
from tests.lifecycle.test_pacing_owner import PACED, paced_world
from tests.strategy.helpers import enter

SIT = {"name": "sit", "when": {"url": "/pricing", "time_on_page_s": 30}}


def erase(world: World) -> int:
    return world.owner.forget_visitor([world.visit.visit_id], [world.visit.global_visit_id])


def pacer_of(world: World) -> Pacer:
    assert world.owner.pacer is not None
    return world.owner.pacer


def test_an_erased_visit_leaves_the_strategies_schedule_at_once():
    world = make_world([SIT])
    world.owner.decide(world.events(enter("/pricing", 1)))
    assert world.engine.pending_dues == 1

    erase(world)

    assert world.engine.pending_dues == 0
    assert world.engine.next_due is None


def test_an_erased_visitor_leaves_the_agent_group_s_line_at_once():
    world, _ = paced_world(ready=0)
    attempt = world.owner.start(world.visit, PACED, world.clock.at(0))
    assert attempt.state is State.PACED

    assert erase(world) == 1

    assert pacer_of(world).forget({attempt.attempt_id}) == 0  # nothing of it was left


async def test_an_erased_visitor_s_accepted_invitation_stops_counting_against_its_group():
    world, _ = paced_world(ready=1)
    counters = pacer_of(world).counters
    attempt = world.owner.start(world.visit, PACED, world.clock.at(0))
    world.clock.at(1)
    await world.owner.page_reported(attempt, PageCode.ACCEPTED)
    world.owner.pace_lines(world.clock.at(2))
    assert counters.pending("sales").accepted == 1  # until an agent report counts the chat

    erase(world)

    world.owner.pace_lines(world.clock.at(3))
    assert counters.pending("sales").accepted == 0

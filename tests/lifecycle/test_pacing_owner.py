"""Pacing inside the owner's decide step, on an injected clock: paced, released, expired."""

from __future__ import annotations

from typing import Any

from engagement.attempts import Attempt
from engagement.availability import AvailabilityBoard, GroupState
from engagement.pacing.counters import LocalCounters
from engagement.pacing.pacer import Pacer, PacingConfig
from tests.lifecycle.conftest import World, make_world
from tests.strategy.helpers import T0, ms, strategy

PACED = strategy({"name": "s", "when": {"url": "/"}, "availability": {"group": "sales"}})
NO_ROOM = "group sales has no room (1 in line)"


def paced_world(ready: int) -> tuple[World, AvailabilityBoard]:
    world = make_world()
    board = AvailabilityBoard()
    board.report("sales", GroupState(ready, 0.0, T0, agents_busy=1 - ready))
    world.owner.pacer = Pacer(PacingConfig(), board, LocalCounters())
    world.owner.paced_wait_s = 120
    return world, board


def record(attempt: Attempt, transitions: list[tuple[str, float, str]]) -> dict[str, Any]:
    every = [("detected", 0, ""), *transitions]
    return {
        "attemptID": attempt.attempt_id, "visitID": "V1", "globalVisitID": "G1",
        "pageID": "V1-P1", "strategy": "s", "origin": "strategy", "invite": "chat.html",
        "media": "chat", "params": {}, "timeoutS": 30, "createdAt": T0,
        "state": every[-1][0],
        "transitions": [{"state": s, "at": ms(t), "reason": r} for s, t, r in every],
        "handoff": {}, "variant": "",
    }  # fmt: skip


def test_room_means_offered_at_once():
    world, _ = paced_world(ready=1)
    attempt = world.owner.start(world.visit, PACED, world.clock.at(0))
    assert attempt.as_json() == record(attempt, [("offered", 0, "")])


def test_no_room_means_paced_then_offered_when_an_agent_frees_up():
    world, board = paced_world(ready=0)
    attempt = world.owner.start(world.visit, PACED, world.clock.at(0))
    assert attempt.as_json() == record(attempt, [("paced", 0, NO_ROOM)])
    assert world.owner.pace_lines(world.clock.at(5)) == 0
    board.report("sales", GroupState(1, 0.0, world.clock.at(6)))
    assert world.owner.pace_lines(world.clock.at(7)) == 1
    assert attempt.as_json() == record(attempt, [("paced", 0, NO_ROOM), ("offered", 7, "")])


def test_a_paced_attempt_waits_no_longer_than_its_wait():
    world, _ = paced_world(ready=0)
    attempt = world.owner.start(world.visit, PACED, world.clock.at(0))
    world.owner.tick(world.clock.at(119.999))
    assert attempt.state.value == "paced"
    world.owner.tick(world.clock.at(120))
    assert attempt.as_json() == record(
        attempt, [("paced", 0, NO_ROOM), ("timed_out", 120, "no answer while paced")]
    )
    assert world.owner.pacer is not None
    assert world.owner.pacer.waiting("sales") == 0

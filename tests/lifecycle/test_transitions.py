"""Table tests of the owner's transitions: each page code from each state, on an injected
clock, comparing the whole attempt record."""

from __future__ import annotations

from typing import Any

import pytest

from engagement.attempts import State
from engagement.lifecycle.owner import Conflict
from engagement.lifecycle.transitions import PageCode
from tests.lifecycle.conftest import World
from tests.strategy.helpers import T0, ms

REPORTED = "reported by the page"
# How each starting state is reached: page codes at 1 s, 2 s, 3 s after the offer at 0 s.
REACH: dict[State, list[PageCode]] = {
    State.OFFERED: [],
    State.SHOWN: [PageCode.SHOWN],
    State.ACCEPTED: [PageCode.SHOWN, PageCode.ACCEPTED],
    State.LAUNCHED: [PageCode.SHOWN, PageCode.ACCEPTED, PageCode.LAUNCHED],
    State.DECLINED: [PageCode.SHOWN, PageCode.DECLINED],
}
REACHED = {  # the transitions those codes recorded: (state, seconds, reason)
    State.OFFERED: [],
    State.SHOWN: [("shown", 1, REPORTED)],
    State.ACCEPTED: [("shown", 1, REPORTED), ("accepted", 2, REPORTED)],
    State.LAUNCHED: [("shown", 1, REPORTED), ("accepted", 2, REPORTED), ("launched", 3, REPORTED)],
    State.DECLINED: [("shown", 1, REPORTED), ("declined", 2, REPORTED)],
}
CONFLICT = "conflict"
C = PageCode

# (from, code): the transitions the code adds at 10 s, or CONFLICT (409, nothing changes).
TABLE: list[tuple[State, PageCode, Any]] = [
    # The invitation's answers.
    (State.OFFERED, C.SHOWN, [("shown", 10, REPORTED)]),
    (State.OFFERED, C.ACCEPTED, [("accepted", 10, REPORTED)]),
    (State.OFFERED, C.DECLINED, [("declined", 10, REPORTED)]),
    (State.OFFERED, C.CLOSED, [("closed", 10, REPORTED)]),
    (State.OFFERED, C.TIMED_OUT, [("timed_out", 10, REPORTED)]),
    (State.OFFERED, C.FAILED, [("failed", 10, REPORTED)]),
    (State.OFFERED, C.INTERACTING, []),
    (State.SHOWN, C.SHOWN, []),
    (State.SHOWN, C.ACCEPTED, [("accepted", 10, REPORTED)]),
    (State.SHOWN, C.DECLINED, [("declined", 10, REPORTED)]),
    (State.SHOWN, C.INTERACTING, []),
    (State.ACCEPTED, C.SHOWN, []),
    (State.ACCEPTED, C.ACCEPTED, []),
    (State.ACCEPTED, C.DECLINED, CONFLICT),
    (State.ACCEPTED, C.CLOSED, CONFLICT),
    (State.ACCEPTED, C.TIMED_OUT, CONFLICT),
    (State.DECLINED, C.DECLINED, []),
    (State.DECLINED, C.SHOWN, []),
    (State.DECLINED, C.ACCEPTED, CONFLICT),
    (State.DECLINED, C.LAUNCHED, CONFLICT),
    # News of a chat whose attempt already ended (a late page): nothing to do.
    (State.DECLINED, C.RESTORED, []),
    (State.DECLINED, C.RESTORE_TIMEOUT, []),
    (State.DECLINED, C.AGENT_CONNECTED, []),
    # A chat opening or ending early says the visitor accepted (the answer was overtaken).
    (State.SHOWN, C.LAUNCHED, [("accepted", 10, "implied by launched"),
                               ("launched", 10, REPORTED)]),
    (State.SHOWN, C.COMPLETED, [("accepted", 10, "implied by completed"),
                                ("launched", 10, "implied by completed"),
                                ("completed", 10, "chat ended")]),
    (State.OFFERED, C.RESTORED, [("accepted", 10, "implied by restored"),
                                 ("launched", 10, "restored on another page")]),
    (State.SHOWN, C.ALREADY_OPEN, [("accepted", 10, "implied by already_open"),
                                   ("launched", 10, "already open")]),
    (State.SHOWN, C.ERROR, [("failed", 10, "chat error")]),
    (State.SHOWN, C.AGENT_CONNECTED, CONFLICT),
    (State.SHOWN, C.RESTORE_FAILED, CONFLICT),
    # Accepted: the chat opens (here or on another page), or never does.
    (State.ACCEPTED, C.LAUNCHED, [("launched", 10, REPORTED)]),
    (State.ACCEPTED, C.COMPLETED, [("launched", 10, "implied by completed"),
                                   ("completed", 10, "chat ended")]),
    (State.ACCEPTED, C.RESTORED, [("launched", 10, "restored on another page")]),
    (State.ACCEPTED, C.ALREADY_OPEN, [("launched", 10, "already open")]),
    (State.ACCEPTED, C.AGENT_CONNECTED, []),
    (State.ACCEPTED, C.ERROR, [("failed", 10, "chat error")]),
    (State.ACCEPTED, C.FAILED, [("failed", 10, REPORTED)]),
    (State.ACCEPTED, C.RESTORE_FAILED, [("failed", 10, "restore failed")]),
    (State.ACCEPTED, C.RESTORE_TIMEOUT, [("failed", 10, "restore timeout")]),
    (State.ACCEPTED, C.INTERACTING, []),
    # Launched: news of the chat, then its end.
    (State.LAUNCHED, C.LAUNCHED, []),
    (State.LAUNCHED, C.RESTORED, []),
    (State.LAUNCHED, C.ALREADY_OPEN, []),
    (State.LAUNCHED, C.AGENT_CONNECTED, []),
    (State.LAUNCHED, C.ACCEPTED, []),
    (State.LAUNCHED, C.SHOWN, []),
    (State.LAUNCHED, C.COMPLETED, [("completed", 10, "chat ended")]),
    (State.LAUNCHED, C.ERROR, []),  # a failed request: the chat goes on
    (State.LAUNCHED, C.RESTORE_FAILED, [("completed", 10, "restore failed")]),
    (State.LAUNCHED, C.RESTORE_TIMEOUT, [("completed", 10, "restore timeout")]),
    (State.LAUNCHED, C.FAILED, [("failed", 10, REPORTED)]),
    (State.LAUNCHED, C.DECLINED, CONFLICT),
]  # fmt: skip


def record(attempt_id: str, transitions: list[tuple[str, float, str]], **handoff: Any) -> Any:
    """The whole API form of the test attempt, with these transitions after the offer."""
    every = [("detected", 0, ""), ("offered", 0, ""), *transitions]
    return {
        "attemptID": attempt_id,
        "visitID": "V1",
        "globalVisitID": "G1",
        "pageID": "V1-P1",
        "strategy": "s",
        "origin": "strategy",
        "invite": "chat.html",
        "media": "chat",
        "params": {},
        "timeoutS": 30,
        "createdAt": T0,
        "state": every[-1][0],
        "transitions": [{"state": s, "at": ms(t), "reason": r} for s, t, r in every],
        "handoff": handoff,
        "variant": "",
    }


async def reach(world: World, state: State) -> str:
    attempt = world.new_attempt()
    for second, code in enumerate(REACH[state], start=1):
        world.clock.at(second)
        await world.owner.page_reported(attempt, code)
    assert attempt.as_json() == record(attempt.attempt_id, REACHED[state])
    return attempt.attempt_id


@pytest.mark.parametrize(("start", "code", "added"), TABLE, ids=lambda v: str(v))
async def test_page_code_from_state(world: World, start: State, code: PageCode, added: Any):
    attempt_id = await reach(world, start)
    attempt = world.owner.by_id[attempt_id]
    world.clock.at(10)
    if added == CONFLICT:
        with pytest.raises(Conflict):
            await world.owner.page_reported(attempt, code)
        assert attempt.as_json() == record(attempt_id, REACHED[start])
        return
    await world.owner.page_reported(attempt, code)
    live = start in (State.ACCEPTED, State.LAUNCHED)
    handoff = {"agentConnectedAt": ms(10)} if code is C.AGENT_CONNECTED and live else {}
    assert attempt.as_json() == record(attempt_id, [*REACHED[start], *added], **handoff)
    # What the store holds is the record itself (queued for the next write).
    assert world.history.queued[attempt_id] == attempt.as_json()


def test_every_code_has_a_row():
    from engagement.lifecycle.transitions import PAGE_MOVES

    assert set(PAGE_MOVES) == set(PageCode)


async def test_acceptance_is_committed_before_the_page_is_answered(world: World):
    attempt_id = await reach(world, State.SHOWN)
    attempt = world.owner.by_id[attempt_id]
    world.clock.at(10)
    await world.owner.page_reported(attempt, C.ACCEPTED)
    assert world.history.committed[attempt_id] == record(
        attempt_id, [("shown", 1, REPORTED), ("accepted", 10, REPORTED)]
    )

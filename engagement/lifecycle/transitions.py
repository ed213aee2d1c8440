"""An attempt's states and the tables of what may follow what. Pure data, no I/O.

Two tables: ``NEXT`` (every move the owner may make) and ``PAGE_MOVES`` (what a code the page
reports does from each state). Both are read by ``owner.Lifecycle`` and by the table tests.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    DETECTED = "detected"  # a strategy (or an agent, or an outside system) decided
    PACED = "paced"  # its agent group has no room now: waiting in line for an invitation
    OFFERED = "offered"  # the notification left for the visitor's page
    SHOWN = "shown"  # the invitation is on screen
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"  # nobody answered in time, or it was never offered
    CLOSED = "closed"  # the visitor closed it without answering
    FAILED = "failed"
    CANCELLED = "cancelled"  # an outside decision-maker said noengage
    LAUNCHED = "launched"  # chat opened / callback sent
    COMPLETED = "completed"
    HELD_OUT = "held_out"  # in the strategy's control group: recorded, never shown


LIVE = frozenset(
    {State.DETECTED, State.PACED, State.OFFERED, State.SHOWN, State.ACCEPTED, State.LAUNCHED}
)
# An offered or shown invitation ends one of these ways (or is withdrawn: cancelled).
ANSWERS = frozenset(
    {State.ACCEPTED, State.DECLINED, State.TIMED_OUT, State.CLOSED, State.FAILED, State.CANCELLED}
)
# What may follow what; anything else is refused (and reported, never silently applied).
NEXT: dict[State, frozenset[State]] = {
    State.DETECTED: frozenset(
        {State.PACED, State.OFFERED, State.TIMED_OUT, State.CANCELLED, State.FAILED, State.HELD_OUT}
    ),
    State.PACED: frozenset({State.OFFERED, State.TIMED_OUT, State.CANCELLED, State.FAILED}),
    State.OFFERED: ANSWERS | {State.SHOWN},
    State.SHOWN: ANSWERS,
    State.ACCEPTED: frozenset({State.LAUNCHED, State.FAILED, State.COMPLETED}),
    State.LAUNCHED: frozenset({State.COMPLETED, State.FAILED}),
}


def can_move(current: State, target: State) -> bool:
    return target in NEXT.get(current, frozenset())


class PageCode(enum.StrEnum):
    """What the visitor's page reports (``GET /dispositions/{attemptID}?code=``)."""

    SHOWN = "shown"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    INTERACTING = "interacting"  # filling the invitation's form: hold it longer
    LAUNCHED = "launched"  # the chat opened in the page (Widgets or the chat URL)
    COMPLETED = "completed"  # the chat ended
    RESTORED = "restored"  # Widgets restored the chat on another page of the visit
    AGENT_CONNECTED = "agent_connected"
    ERROR = "error"  # WebChatService.error: a request to the chat server failed
    RESTORE_FAILED = "restore_failed"
    RESTORE_TIMEOUT = "restore_timeout"
    ALREADY_OPEN = "already_open"  # WebChat.open refused: a chat was open; updateUserData used


# From each state, the states a code walks through (in order) and the reason recorded.
# () means "nothing to do" (a repeat, or news that changes no state); a state missing from a
# code's row means the code contradicts what already happened: a conflict (409).
Moves = dict[State, tuple[tuple[State, ...], str]]
_PRE = (State.OFFERED, State.SHOWN)
_OPENED = (State.ACCEPTED, State.LAUNCHED)  # an opened chat implies the visitor said yes


def _answer(target: State) -> Moves:
    return {
        State.OFFERED: ((target,), "reported by the page"),
        State.SHOWN: ((target,), "reported by the page"),
        target: ((), ""),
    }


def _nothing(*states: State) -> Moves:
    return {s: ((), "") for s in states}


# News of a chat whose attempt already ended (a restore on a late page): nothing to do.
_ENDED = _nothing(*(s for s in State if s not in LIVE))


PAGE_MOVES: dict[PageCode, Moves] = {
    PageCode.SHOWN: {
        State.OFFERED: ((State.SHOWN,), "reported by the page"),
        **_nothing(State.SHOWN, State.ACCEPTED, State.LAUNCHED, State.COMPLETED, State.DECLINED,
                   State.CLOSED, State.TIMED_OUT, State.FAILED, State.CANCELLED),
    },
    PageCode.ACCEPTED: {
        **{s: ((State.ACCEPTED,), "reported by the page") for s in _PRE},
        **_nothing(State.ACCEPTED, State.LAUNCHED, State.COMPLETED),
    },
    PageCode.DECLINED: _answer(State.DECLINED),
    PageCode.CLOSED: _answer(State.CLOSED),
    PageCode.TIMED_OUT: _answer(State.TIMED_OUT),
    PageCode.FAILED: {
        **{s: ((State.FAILED,), "reported by the page") for s in (*_PRE, *_OPENED)},
        **_nothing(State.FAILED),
    },
    PageCode.INTERACTING: _nothing(*_PRE, *_OPENED, State.COMPLETED),
    PageCode.LAUNCHED: {
        **{s: (_OPENED, "reported by the page") for s in _PRE},
        State.ACCEPTED: ((State.LAUNCHED,), "reported by the page"),
        **_nothing(State.LAUNCHED, State.COMPLETED),
    },
    PageCode.COMPLETED: {
        **{s: ((*_OPENED, State.COMPLETED), "chat ended") for s in _PRE},
        State.ACCEPTED: ((State.LAUNCHED, State.COMPLETED), "chat ended"),
        State.LAUNCHED: ((State.COMPLETED,), "chat ended"),
        **_nothing(State.COMPLETED),
    },
    PageCode.RESTORED: {
        **_ENDED,
        **{s: (_OPENED, "restored on another page") for s in _PRE},
        State.ACCEPTED: ((State.LAUNCHED,), "restored on another page"),
        **_nothing(State.LAUNCHED, State.COMPLETED),
    },
    PageCode.AGENT_CONNECTED: {**_ENDED, **_nothing(*_OPENED)},
    # Widgets' `error` is any failed request to the chat server: before the chat started it
    # could not start; once started the session goes on (offline, then back online, says
    # Widgets), so the chat's own end, or chat_max_duration_s, ends the attempt.
    PageCode.ERROR: {
        **_ENDED,
        **{s: ((State.FAILED,), "chat error") for s in (*_PRE, State.ACCEPTED)},
        **_nothing(State.LAUNCHED),
    },
    PageCode.RESTORE_FAILED: {
        **_ENDED,
        State.ACCEPTED: ((State.FAILED,), "restore failed"),
        State.LAUNCHED: ((State.COMPLETED,), "restore failed"),
    },
    PageCode.RESTORE_TIMEOUT: {
        **_ENDED,
        State.ACCEPTED: ((State.FAILED,), "restore timeout"),
        State.LAUNCHED: ((State.COMPLETED,), "restore timeout"),
    },
    PageCode.ALREADY_OPEN: {
        **_ENDED,
        **{s: (_OPENED, "already open") for s in _PRE},
        State.ACCEPTED: ((State.LAUNCHED,), "already open"),
        **_nothing(State.LAUNCHED, State.COMPLETED),
    },
}  # fmt: skip

# Codes that say a launched chat is alive (its no-news deadline starts again).
SIGNS_OF_LIFE = frozenset(
    {PageCode.LAUNCHED, PageCode.RESTORED, PageCode.AGENT_CONNECTED, PageCode.ALREADY_OPEN}
)


def page_moves(current: State, code: PageCode) -> tuple[tuple[State, ...], str] | None:
    """The states ``code`` walks ``current`` through, with the reason; None: a conflict."""
    return PAGE_MOVES[code].get(current)

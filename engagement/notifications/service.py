"""The notification service: outside systems and strategies reach the visitor's pages here,
and the visitor's answers to invitations come back here."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import constants as C
from ..attempts import Attempt, State
from ..engagements import Engagements
from ..launchers.handoff import page_handoff
from ..monitoring.ingest import now_ms
from ..settings import UserData
from ..visits.model import Visit
from .hub import PushHub

log = logging.getLogger("engagement.notifications")

INVITE_CHANNEL = "gpe.invite"
CLOSE_INVITE_CHANNEL = "gpe.closeInvite"
ENGAGED_CHANNEL = "gpe.engaged"  # a page's first frame: the visit's live chat, to follow

# What a disposition code from the page does to an attempt.
DISPOSITIONS: dict[str, State] = {
    "shown": State.SHOWN,
    "accepted": State.ACCEPTED,
    "declined": State.DECLINED,
    "timed_out": State.TIMED_OUT,
    "closed": State.CLOSED,
    "failed": State.FAILED,
    "launched": State.LAUNCHED,  # the chat opened in the page (Widgets or the chat URL)
    "completed": State.COMPLETED,  # the chat ended
}
# What the page reports of a chat that Widgets follows on every page of the visit: the state
# it implies from an accepted attempt and from a launched one (None: nothing changes).
CHAT_REPORTS: dict[str, tuple[State | None, State | None]] = {
    "restored": (State.LAUNCHED, None),  # the chat goes on, on another page
    "already_open": (State.LAUNCHED, None),  # a chat was open: the attached data joined it
    "agent_connected": (None, None),
    "error": (State.FAILED, State.COMPLETED),
    "restore_failed": (State.FAILED, State.COMPLETED),
    "restore_timeout": (State.FAILED, State.COMPLETED),
}
ORDER = [State.DETECTED, State.OFFERED, State.SHOWN, State.ACCEPTED, State.LAUNCHED]


class DispositionConflict(Exception):
    """The attempt already ended otherwise (declined after accepted, say)."""

    def __init__(self, attempt: Attempt, code: str) -> None:
        super().__init__(f"attempt {attempt.attempt_id} is {attempt.state.value}; cannot be {code}")
        self.attempt = attempt


Announce = Callable[[Attempt, Visit], Awaitable[None]]


class Notifier:
    def __init__(
        self, hub: PushHub, engagements: Engagements, user_data: UserData | None = None
    ) -> None:
        self.hub = hub
        self.engagements = engagements
        self.user_data = user_data or UserData()  # what of the visit a chat's page attaches
        self.announce: Announce | None = None  # where external decisions are asked for
        engagements.offers.append(self)
        engagements.ended_listeners.append(self._close_everywhere)

    def notify(self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any]) -> int:
        """Send one message to a visit's pages (or one page); its id."""
        return self.hub.publish(visit_id, page_id, channel, data, now_ms()).id

    # -- invitations --

    def offer(self, attempt: Attempt, visit: Visit) -> None:
        """Push the invitation to the visit's pages: the one the visitor uses shows it."""
        now = now_ms()
        data = {
            "attemptID": attempt.attempt_id,
            "url": f"/invites/{attempt.attempt_id}.html?visitID={visit.visit_id}",
            "media": attempt.media,
            "timeoutS": attempt.timeout_s,
            "params": attempt.params,
        }
        if attempt.media == "chat":  # the page opens the chat: it attaches these itself
            data.update(page_handoff(visit, self.user_data))
        self.hub.publish(visit.visit_id, None, INVITE_CHANNEL, data, now)
        self.engagements.move(attempt, State.OFFERED, now)
        self.engagements.expect(
            attempt, State.OFFERED, now + int(self.engagements.offer_timeout_s * 1000)
        )

    def disposition(self, attempt: Attempt, code: str) -> None:
        """Apply what the page reports. Reporting the same thing twice changes nothing."""
        now = now_ms()
        if code == "interacting":  # filling the invitation's form: hold it longer
            if attempt.state in (State.OFFERED, State.SHOWN):
                self.engagements.expect(
                    attempt, attempt.state, now + C.REGISTRATION_FORM_EXPIRATION_S * 1000
                )
            return
        if code in CHAT_REPORTS:
            return self._chat_report(attempt, code, now)
        target = DISPOSITIONS[code]
        if target in (State.LAUNCHED, State.COMPLETED) and attempt.state in (
            State.OFFERED,
            State.SHOWN,
        ):  # 'launched' overtook 'accepted' on the way: the chat opening says it was accepted
            self.engagements.move(attempt, State.ACCEPTED, now, "implied by " + code)
        if attempt.state is target or _already_past(attempt.state, target):
            return
        if not attempt.can_move(target):
            raise DispositionConflict(attempt, code)
        self.engagements.move(attempt, target, now, "reported by the page")
        if target is State.ACCEPTED:
            self._close_everywhere(attempt)
        if target is State.SHOWN:
            grace_s = attempt.timeout_s + C.SHOWN_GRACE_S
            self.engagements.expect(attempt, State.SHOWN, now + int(grace_s * 1000))

    def _chat_report(self, attempt: Attempt, code: str, now: int) -> None:
        if attempt.state in (State.OFFERED, State.SHOWN) and code in ("restored", "already_open"):
            self.engagements.move(attempt, State.ACCEPTED, now, "implied by " + code)
        if attempt.state not in (State.ACCEPTED, State.LAUNCHED):
            if attempt.live:
                raise DispositionConflict(attempt, code)
            return  # news of a chat whose attempt already ended: nothing to do
        from_accepted, from_launched = CHAT_REPORTS[code]
        target = from_accepted if attempt.state is State.ACCEPTED else from_launched
        if target is not None:
            self.engagements.move(attempt, target, now, code.replace("_", " "))

    def _close_everywhere(self, attempt: Attempt) -> None:
        """Once answered (or expired), the invitation leaves every tab that may show it."""
        data = {"attemptID": attempt.attempt_id, "reason": attempt.state.value}
        self.hub.publish(attempt.visit_id, None, CLOSE_INVITE_CHANNEL, data, now_ms())


def live_chat(visit: Visit | None) -> Attempt | None:
    """The visit's chat that was accepted and has not ended: every page of the visit follows it
    (Widgets restores the chat on each page)."""
    attempts: list[Attempt] = visit.attempts if visit else []
    for attempt in reversed(attempts):
        if attempt.media == "chat" and attempt.state in (State.ACCEPTED, State.LAUNCHED):
            return attempt
    return None


def engaged_frame(attempt: Attempt) -> bytes:
    """The SSE frame telling a page which chat to follow. Its id is 0 (and it has no SSE id):
    every page handles it, and it moves no page's replay point."""
    data = {"attemptID": attempt.attempt_id, "media": attempt.media, "state": attempt.state.value}
    frame = {"id": 0, "channel": ENGAGED_CHANNEL, "data": data}
    payload = json.dumps(frame, separators=(",", ":"))
    return f"event: message\ndata: {payload}\n\n".encode()


def _already_past(state: State, target: State) -> bool:
    """'shown' arriving after 'accepted' (two tabs, retries): nothing to do."""
    if target is State.SHOWN:
        return state not in (State.DETECTED, State.OFFERED)
    if target in (State.ACCEPTED, State.LAUNCHED):
        return (
            ORDER.index(state) > ORDER.index(target) if state in ORDER else state is State.COMPLETED
        )
    return False

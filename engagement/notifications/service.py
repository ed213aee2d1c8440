"""The notification service: outside systems and strategies reach the visitor's pages here.

Invitations and their answers belong to the lifecycle owner (``lifecycle.owner``), which
publishes ``gpe.invite`` and ``gpe.closeInvite`` through the same hub; a page's first frame
names the visit's live chat (``gpe.engaged``) so every page follows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..attempts import Attempt, State
from ..visits.model import Visit
from .hub import PushHub, encode

ENGAGED_CHANNEL = "gpe.engaged"  # a page's first frame: the visit's live chat, to follow
RESYNC_CHANNEL = "gpe.resync"  # messages the page missed are lost: it may ask for its state


class Notifier:
    def __init__(self, hub: PushHub, clock: Callable[[], int]) -> None:
        self.hub = hub
        self.clock = clock

    def notify(
        self, visit_id: str, page_id: str | None, channel: str, data: dict[str, Any]
    ) -> None:
        """Send one message to a visit's pages (or one page)."""
        self.hub.publish(visit_id, page_id, channel, data, self.clock())

    async def sent(self) -> None:
        """Wait until the messages sent so far can be replayed to a page on any node."""
        await self.hub.sent()


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
    return encode(0, ENGAGED_CHANNEL, data)


def resync_frame(since: int, reason: str) -> bytes:
    """The SSE frame telling a page that messages after ``since`` may be lost ("lost": the
    buffer went with Redis; "bound": trimmed before the page came back; "unavailable": Redis
    could not be read). Like ``gpe.engaged`` it has id 0: it moves no replay point."""
    return encode(0, RESYNC_CHANNEL, {"since": since, "reason": reason})

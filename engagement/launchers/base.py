"""What every medium's launcher is, and what it may tell the lifecycle owner.

A launcher is the server side of one medium: what the engine does once the visitor said yes
(``accepted``), and the outcomes it reports back through ``Outcomes`` (the owner's intents).
Adding a medium: one file here with its class, and one line in ``registry.REGISTRATION``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..attempts import Attempt

if TYPE_CHECKING:
    import aiohttp

    from ..settings import Settings
    from ..visits.model import Visit


class Outcomes(Protocol):
    """The owner's intent methods a launcher reports to (``lifecycle.owner.Lifecycle``)."""

    def launched(self, attempt: Attempt, reason: str) -> None: ...

    def failed(self, attempt: Attempt, reason: str) -> None: ...

    def completed(self, attempt: Attempt, reason: str) -> None: ...

    def record(self, attempt: Attempt, **handoff: Any) -> None: ...

    def queued(self, attempt: Attempt, **handoff: Any) -> None: ...


class Launcher(Protocol):
    name: str  # e.g. "widgets_chat"
    media: str  # the offer's `media:` it serves (chat, callback, custom)

    async def accepted(self, attempt: Attempt) -> None:
        """The visitor said yes (the attempt is accepted and written)."""


class LaunchRefused(Exception):
    """The medium said no (no agent, an error): the attempt failed with this reason."""

    def __init__(self, reason: str, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable  # no agent: the visitor is told so


class HTTPLauncher:
    """What a launcher that calls out over HTTP holds: settings, the shared client session, the
    owner's intents and a way to find the visit."""

    def __init__(
        self,
        settings: Settings,
        session: Callable[[], aiohttp.ClientSession],
        outcomes: Outcomes,
        visits: Callable[[str], Visit | None],
    ) -> None:
        self.settings = settings
        self._session = session
        self.outcomes = outcomes
        self._visits = visits

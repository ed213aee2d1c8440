"""The registration table of media: which launcher serves which offer ``media``.

Adding a medium: its file in this folder (a class with ``name``, ``media``, ``enabled`` and
``accepted``) and one line below. The first enabled launcher of a media serves it; the others
of the same media are the page's business (Widgets, else the chat page). ``MEDIA``, the offer
``media:`` names that strategies, the engage call and the console accept, come from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import aiohttp

from ..attempts import Attempt
from ..settings import Settings
from ..visits.model import Visit
from .base import Launcher, Outcomes
from .chat_page import ChatPage
from .gms_callback import GMSCallback
from .gms_chat import GMSChat
from .webhook import CustomWebhook
from .widgets_chat import WidgetsChat

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deps:
    """What launchers may need, passed in."""

    settings: Settings
    session: Callable[[], aiohttp.ClientSession]
    outcomes: Outcomes
    lookup: Callable[[str], Attempt | None]  # an attempt by ID
    visits: Callable[[str], Visit | None]  # a live visit by ID (its fields go in attached data)


class Medium(Protocol):
    """A launcher's class: what the table reads of it before building it."""

    name: str
    media: str

    def enabled(self, settings: Settings) -> bool: ...


Registration = tuple[Medium, Callable[[Deps], Launcher]]

REGISTRATION: list[Registration] = [
    (GMSChat, lambda d: GMSChat(d.settings, d.session, d.outcomes, d.visits)),
    (WidgetsChat, lambda d: WidgetsChat()),
    (ChatPage, lambda d: ChatPage()),
    (GMSCallback, lambda d: GMSCallback(d.settings, d.session, d.outcomes, d.lookup, d.visits)),
    (CustomWebhook, lambda d: CustomWebhook(d.settings, d.session, d.outcomes, d.visits)),
]

MEDIA: tuple[str, ...] = tuple(dict.fromkeys(kind.media for kind, _ in REGISTRATION))
if TYPE_CHECKING:
    Media = str  # one of MEDIA
else:
    Media = Literal[MEDIA]  # the offer's `media:` (pydantic checks it; JSON schemas list it)


class Launchers:
    """The enabled launchers, by name, and the one serving each media."""

    def __init__(self, deps: Deps) -> None:
        self.by_name: dict[str, Launcher] = {}
        self.by_media: dict[str, Launcher] = {}
        for kind, build in REGISTRATION:
            if kind.enabled(deps.settings):
                launcher = self.by_name[kind.name] = build(deps)
                self.by_media.setdefault(launcher.media, launcher)

    def named(self, name: str, kind: type[T]) -> T | None:
        """The enabled launcher ``name`` as its class (None when it is not enabled)."""
        launcher = self.by_name.get(name)
        return launcher if isinstance(launcher, kind) else None

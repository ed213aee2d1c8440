"""Genesys Widgets chat, opened in the page by engage.js (``WebChat.open`` with the attached
data); the page reports launched, restored, agent_connected, completed... to the owner."""

from __future__ import annotations

from ..attempts import Attempt
from ..settings import Settings


class WidgetsChat:
    name = "widgets_chat"
    media = "chat"

    async def accepted(self, attempt: Attempt) -> None:
        """Nothing for the server to do: the page opens the chat and reports it."""

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return not settings.gms_chat

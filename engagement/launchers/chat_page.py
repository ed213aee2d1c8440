"""A chat page (``chat_url``) the page opens where Widgets are absent, with the visit's IDs
and the GMS scenario in its query; the page reports launched and completed."""

from __future__ import annotations

from ..attempts import Attempt
from ..settings import Settings


class ChatPage:
    name = "chat_page"
    media = "chat"

    async def accepted(self, attempt: Attempt) -> None:
        """Nothing for the server to do: the page opens the chat page and reports it."""

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return bool(settings.chat_url) and not settings.gms_chat

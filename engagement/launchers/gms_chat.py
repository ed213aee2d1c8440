"""Chats created through GMS ``request-chat`` (``gms_chat = true``): the page asks for one at
``POST /chats`` once the visitor accepted; GMS answers with the chat's ``_id`` and the REST
path of its chat API, which the page hands to the chat client."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from ..attempts import Attempt
from ..settings import Settings
from .base import HTTPLauncher, LaunchRefused
from .handoff import attached_data

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChatCreated:
    chat_url: str | None  # GMS's _chatIxnAPI-CREATE-URL, absolute (a REST URL, not a page)
    gms_id: str | None


def gms_rest_url(gms_base: str, url: object) -> str | None:
    """GMS answers REST paths ("/genesys/1/service/<id>/ixn/chat"), which live under the same
    base as the request-chat call; absolute URLs are kept."""
    if not isinstance(url, str) or not url:
        return None
    return gms_base.rstrip("/") + url if url.startswith("/") else url


class GMSChat(HTTPLauncher):
    name = "gms_chat"
    media = "chat"

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return settings.gms_chat and settings.resolved_gms_url() is not None

    async def accepted(self, attempt: Attempt) -> None:
        """Nothing yet: the page asks for the chat (``create``) when it is ready to show it."""

    async def create(self, attempt: Attempt, page_id: str) -> ChatCreated:
        """Ask GMS for the chat; launched, or failed and ``LaunchRefused``."""
        gms = self.settings.resolved_gms_url() or ""
        visit, fields = self._visits(attempt.visit_id), self.settings.user_data.attach
        form = {**self.settings.gms_extra, **attached_data(attempt, page_id, visit, fields)}
        url = f"{gms.rstrip('/')}/genesys/1/service/request-chat"
        timeout = aiohttp.ClientTimeout(total=self.settings.gms_timeout_s)
        try:
            async with self._session().post(url, data=form, timeout=timeout) as r:
                if r.status == 503:
                    self.outcomes.failed(attempt, "no agent available (GMS 503)")
                    raise LaunchRefused("no agent available (GMS 503)", unavailable=True)
                if r.status >= 300:
                    reason = f"GMS request-chat answered {r.status}"
                    self.outcomes.failed(attempt, reason)
                    raise LaunchRefused(reason)
                answer = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"GMS request-chat unreachable: {exc!r}"
            self.outcomes.failed(attempt, reason)
            raise LaunchRefused(reason) from exc
        created = ChatCreated(
            gms_rest_url(gms, answer.get("_chatIxnAPI-CREATE-URL")), answer.get("_id")
        )
        self.outcomes.record(attempt, gmsID=created.gms_id, chatURL=created.chat_url)
        self.outcomes.launched(attempt, "GMS chat created")
        return created

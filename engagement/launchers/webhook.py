"""Third-party media (``media: custom``): the accepted attempt and its attached data, signed,
posted to ``custom_webhook_url``; launched on a 2xx, failed after the retries."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from ..attempts import Attempt, State
from ..settings import Settings
from ..webhooks import post_json
from .base import HTTPLauncher
from .handoff import attached_data

log = logging.getLogger(__name__)
WEBHOOK_TRIES = 3  # then the attempt failed; 1 s, 2 s between tries


class CustomWebhook(HTTPLauncher):
    name = "webhook"
    media = "custom"

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return bool(settings.custom_webhook_url)

    async def accepted(self, attempt: Attempt) -> None:
        url = self.settings.custom_webhook_url
        assert url is not None
        payload = {
            "event": "engagement.accepted",
            "attempt": attempt.as_json(),
            "attachedData": attached_data(
                attempt,
                visit=self._visits(attempt.visit_id),
                fields=self.settings.user_data.attach,
            ),
        }
        reason, secret = "", self.settings.webhook_secret
        for tries in range(1, WEBHOOK_TRIES + 1):
            try:
                status = await post_json(self._session(), url, payload, secret)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, reason = 0, f"webhook unreachable: {exc!r}"
            else:
                reason = f"webhook answered {status}"
            if 200 <= status < 300:
                if attempt.can_move(State.LAUNCHED):
                    self.outcomes.launched(attempt, "custom webhook")
                return
            if 400 <= status < 500:
                break
            if tries < WEBHOOK_TRIES:
                await asyncio.sleep(tries)
        if attempt.live:
            self.outcomes.failed(attempt, reason)

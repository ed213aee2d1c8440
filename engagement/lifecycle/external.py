"""Strategies with ``decide: external``: the attempt is announced to an outside
decision-maker, which answers with GWE's engage or noengage before the attempt expires."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp

from ..attempts import Attempt
from ..visits.model import Visit
from ..webhooks import post_json

log = logging.getLogger(__name__)


class DecisionWebhook:
    def __init__(
        self,
        url: str,
        secret: str | None,
        session: Callable[[], aiohttp.ClientSession],
        clock: Callable[[], int],
    ) -> None:
        self.url = url
        self.secret = secret
        self._session = session
        self.clock = clock

    async def announce(self, attempt: Attempt, visit: Visit) -> None:
        payload = {
            "event": "engagement.detected",
            "attempt": attempt.as_json(),
            "visit": visit.summary(self.clock()),
            "engage": "/server/data/gateway/engage",
            "noengage": "/server/data/gateway/noengage",
        }
        extra = {"attemptID": attempt.attempt_id, "visitID": attempt.visit_id}
        try:
            status = await post_json(self._session(), self.url, payload, self.secret)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "decision webhook unreachable for attempt %s: %r", attempt.attempt_id, exc,
                extra=extra,
            )  # fmt: skip
            return
        if status >= 300:
            log.warning(
                "decision webhook answered %d for attempt %s", status, attempt.attempt_id,
                extra=extra,
            )  # fmt: skip

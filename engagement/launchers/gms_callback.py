"""GMS callbacks: the invitation's form posts ``POST /callbacks``; the request is stored in the
durable outbox before the visitor gets an answer, then delivered to GMS. The attempt is
``completed`` when GMS took it (its ``_id`` kept), ``failed`` when GMS refused it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from ..attempts import Attempt
from ..settings import Settings
from ..visits.model import Visit
from .base import Outcomes
from .handoff import attached_data
from .outbox import CallbackOutbox, Delivery, GMSSettings

log = logging.getLogger(__name__)


class GMSCallback:
    name = "gms_callback"
    media = "callback"

    def __init__(
        self,
        settings: Settings,
        session: Callable[[], aiohttp.ClientSession],
        outcomes: Outcomes,
        lookup: Callable[[str], Attempt | None],
        visits: Callable[[str], Visit | None],
    ) -> None:
        self.settings = settings
        self.outcomes = outcomes
        self._lookup = lookup
        self._visits = visits
        gms = GMSSettings(
            settings.resolved_gms_url() or "", settings.gms_user, settings.gms_password
        )
        self.outbox = CallbackOutbox(
            settings.records_at, gms, session, self.delivered, settings.gms_timeout_s
        )

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return True

    async def accepted(self, attempt: Attempt) -> None:
        """Nothing yet: the visitor's form brings the number (``request``)."""

    async def request(self, attempt: Attempt, page_id: str, number: str, when: str) -> str:
        """Store the callback request durably (shielded: once stored it is recorded on the
        attempt even if the visitor leaves); its request ID."""
        form = {
            "_customer_number": number,
            "_desired_time": when,
            **self.settings.gms_extra,
            **{str(k): str(v) for k, v in dict(attempt.params.get("attached") or {}).items()},
            **attached_data(
                attempt, page_id, self._visits(attempt.visit_id), self.settings.user_data.attach
            ),
        }
        service = str(attempt.params.get("service") or self.settings.gms_callback_service)
        return await asyncio.shield(self._store(attempt, service, form, when))

    async def _store(self, attempt: Attempt, service: str, form: dict[str, str], when: str) -> str:
        request_id = await self.outbox.enqueue(attempt.attempt_id, attempt.visit_id, service, form)
        self.outcomes.record(attempt, requestID=request_id, desiredTime=when, service=service)
        return request_id

    def delivered(self, delivery: Delivery) -> None:
        """The outbox's answer from GMS: completed with GMS's _id, or failed."""
        attempt = self._lookup(delivery.attempt_id)
        if attempt is None:
            log.warning("callback %s for an attempt no longer in memory", delivery.request_id)
            return
        self.outcomes.record(attempt, gmsID=delivery.gms_id, error=delivery.error)
        if not attempt.live:
            return
        if delivery.ok:
            self.outcomes.completed(attempt, f"GMS callback {delivery.gms_id}")
        else:
            self.outcomes.failed(attempt, delivery.error or "GMS refused")

"""GMS callbacks: the invitation's form posts ``POST /callbacks``; the request is stored in the
durable outbox before the visitor gets an answer, then delivered to GMS. The attempt is
``completed`` when GMS took it (its ``_id`` kept), ``failed`` when GMS refused it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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
        # Several nodes: catch up with a visit (its attempts adopted) before settling its callback.
        self.catch_up: Callable[[str], Awaitable[object]] | None = None
        self._catching_up: set[asyncio.Task[None]] = set()

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
        self.outcomes.queued(attempt, requestID=request_id, desiredTime=when, service=service)
        return request_id

    def delivered(self, delivery: Delivery) -> None:
        """The outbox's answer from GMS: completed with GMS's _id, or failed. On one of several
        nodes, the node that sent it may have an old copy of the attempt, or none (the node that
        took the request died): it catches up with the visit first, adopting its attempts."""
        if self.catch_up is not None and delivery.visit_id:
            task = asyncio.create_task(self._caught_up(self.catch_up, delivery))
            self._catching_up.add(task)
            task.add_done_callback(self._catching_up.discard)
            return
        self._settle(delivery)

    async def _caught_up(
        self, catch_up: Callable[[str], Awaitable[object]], delivery: Delivery
    ) -> None:
        try:
            await catch_up(delivery.visit_id)
        except Exception as exc:  # Redis unreachable: the attempt's deadline ends it
            log.warning("callback %s: visit not caught up: %r", delivery.request_id, exc)
        self._settle(delivery)

    def _settle(self, delivery: Delivery) -> None:
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

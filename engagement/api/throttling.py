"""The limits the edge applies: callbacks and chats per phone number, visitor, client address
and overall; wrong API keys per address. Refused requests get 429 with ``Retry-After``."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter

from aiohttp import web

from .. import constants as C
from ..settings import Settings
from ..throttle import (
    FailureLock,
    MemoryFailureLock,
    MemoryRateLimiter,
    Rate,
    RateLimiter,
    Refusal,
)
from .clients import ProxyPolicy
from .errors import HTTPError
from .state import INVITES

log = logging.getLogger(__name__)


class TooManyRequests(HTTPError):
    status = 429
    code = "too_many_requests"


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Guard:
    """The node's limiter and lock-out, with the counts ``/metrics`` reports."""

    def __init__(
        self,
        settings: Settings,
        limiter: RateLimiter | None = None,
        lock: FailureLock | None = None,
    ) -> None:
        self.proxies = ProxyPolicy(settings.trusted_proxies)
        self.limiter: RateLimiter = limiter or MemoryRateLimiter()
        self.lock: FailureLock = lock or MemoryFailureLock(
            settings.auth_free_failures,
            settings.auth_lockout_base_s,
            settings.auth_lockout_max_s,
            C.AUTH_FAILURES_FORGOTTEN_S,
        )
        s = settings
        self.rates = {
            "callback_number": Rate.parse(s.callback_limit_per_number),
            "callback_visitor": Rate.parse(s.callback_limit_per_visitor),
            "callback_address": Rate.parse(s.callback_limit_per_address),
            "callback_overall": Rate.parse(s.callback_limit_overall),
            "chat_visitor": Rate.parse(s.chat_limit_per_visitor),
            "chat_address": Rate.parse(s.chat_limit_per_address),
            "chat_overall": Rate.parse(s.chat_limit_overall),
        }
        self.refused: Counter[str] = Counter()  # by limit name
        self.auth_failures_total = 0
        self.auth_locked_total = 0  # requests refused while their address was locked out

    async def admit(self, limits: dict[str, str], now_s: float | None = None) -> Refusal | None:
        """Count a request against ``{limit name: key}``; the refusal, named, if one says no."""
        keyed = [(f"{name}:{key}", self.rates[name]) for name, key in limits.items()]
        refusal = await self.limiter.acquire(keyed, time.time() if now_s is None else now_s)
        if refusal is not None:
            name = refusal.key.partition(":")[0]
            self.refused[name] += 1
            return Refusal(name, refusal.retry_after_s)
        return None

    # -- wrong API keys --

    async def check_locked(self, request: web.Request) -> None:
        """429 while the client's address is locked out (no sleeping in the handler)."""
        address = self.proxies.client_address(request)
        self._refuse_locked(await self.lock.locked_for(address, time.time()))

    def _refuse_locked(self, wait_s: float) -> None:
        if wait_s > 0:
            self.auth_locked_total += 1
            raise TooManyRequests(
                f"too many wrong API keys from this address: try again in {math.ceil(wait_s)} s",
                details=[{"field": "X-API-Key", "message": "locked out", "retryAfterS": wait_s}],
                headers=retry_after(wait_s),
            )

    async def key_failed(self, request: web.Request) -> float:
        address = self.proxies.client_address(request)
        self.auth_failures_total += 1
        lock_s = await self.lock.failed(address, time.time())
        if lock_s:
            log.warning("wrong API keys from %s: locked out for %.0f s", address, lock_s)
        return lock_s

    async def key_accepted(self, request: web.Request) -> None:
        """A right key: 429 all the same while the address is locked out (a guess that hits
        tells nothing then); else its failures are forgotten. One step (one Redis round trip
        with several nodes): every authorised request takes it."""
        address = self.proxies.client_address(request)
        self._refuse_locked(await self.lock.admit(address, time.time()))


GUARD = web.AppKey("guard", Guard)


# Which part of the request each limit is about, for the 429's details.
LIMIT_FIELDS = {
    "callback_number": "_customer_number",
    "callback_visitor": "visitID",
    "callback_address": "client",
    "callback_overall": "all",
    "chat_visitor": "visitID",
    "chat_address": "client",
    "chat_overall": "all",
}


async def admit_handoff(request: web.Request, limits: dict[str, str], language: str) -> None:
    """Count a callback or chat request; 429 with the invitation's text when a limit says no."""
    guard = request.app[GUARD]
    refusal = await guard.admit(limits)
    if refusal is None:
        return
    wait_s = math.ceil(refusal.retry_after_s)
    log.warning(
        "%s limit refused a request from %s (retry in %d s)",
        refusal.key,
        guard.proxies.client_address(request),
        wait_s,
    )
    t = request.app[INVITES].strings(language)
    message = t.get("too_many_requests", "") or "Too many requests. Please try again later."
    raise TooManyRequests(
        message,
        details=[
            {
                "field": LIMIT_FIELDS[refusal.key],
                "message": f"{refusal.key} limit reached",
                "retryAfterS": wait_s,
            }
        ],
        headers=retry_after(wait_s),
    )

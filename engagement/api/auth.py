"""API keys for the REST endpoints."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEYS: web.AppKey[list[bytes]] = web.AppKey("api_keys", list)


def _presented_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def api_key_required(handler: Handler) -> Handler:
    """Reject calls without one of the configured keys (``X-API-Key`` or ``Bearer``)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        key = _presented_key(request)
        if key is None:
            raise Unauthorized(
                "an API key is required: send it as 'X-API-Key: <key>' or "
                "'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        presented = key.encode()
        if not any(hmac.compare_digest(presented, k) for k in request.app[API_KEYS]):
            raise Unauthorized("the API key is not valid", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return wrapper

"""API keys for the REST endpoints, and HTTP Basic users beside them (GWE's desktops use Basic).
An address sending wrong ones is locked out, longer and longer (429 with Retry-After)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import BasicAuth, web

from .errors import Unauthorized
from .throttling import GUARD

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEYS: web.AppKey[list[bytes]] = web.AppKey("api_keys", list)
# (user, password) pairs from the `basic_auth_users` setting; Basic only makes sense over HTTPS.
BASIC_USERS: web.AppKey[list[tuple[bytes, bytes]]] = web.AppKey("basic_users", list)


def _presented_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _basic_user_ok(header: str, users: list[tuple[bytes, bytes]]) -> bool:
    """Whether the Basic credentials match a configured pair; every pair is compared in
    constant time, so the answer's timing tells nothing about which part was wrong."""
    try:
        presented = BasicAuth.decode(header)
    except ValueError:
        return False
    login, password = presented.login.encode(), presented.password.encode()
    found = False
    for user, secret in users:
        found |= hmac.compare_digest(login, user) & hmac.compare_digest(password, secret)
    return found


def _challenge(request: web.Request) -> dict[str, str]:
    basic = ', Basic realm="engagement"' if request.app.get(BASIC_USERS) else ""
    return {"WWW-Authenticate": "Bearer" + basic}


def api_key_required(handler: Handler) -> Handler:
    """Reject calls without one of the configured keys (``X-API-Key`` or ``Bearer``) or, when
    ``basic_auth_users`` is set, one of those users (``Authorization: Basic``)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        guard = request.app[GUARD]
        await guard.check_locked(request)
        authorization = request.headers.get("Authorization", "")
        users = request.app.get(BASIC_USERS)
        if users and authorization[:6].lower() == "basic ":
            if not _basic_user_ok(authorization, users):
                await guard.key_failed(request)
                raise Unauthorized("the user or password is not valid", headers=_challenge(request))
            await guard.key_succeeded(request)
            return await handler(request)
        key = _presented_key(request)
        if key is None:
            raise Unauthorized(
                "an API key is required: send it as 'X-API-Key: <key>' or "
                "'Authorization: Bearer <key>'",
                headers=_challenge(request),
            )
        presented = key.encode()
        if not any(hmac.compare_digest(presented, k) for k in request.app[API_KEYS]):
            await guard.key_failed(request)
            raise Unauthorized("the API key is not valid", headers=_challenge(request))
        await guard.key_succeeded(request)
        return await handler(request)

    return wrapper

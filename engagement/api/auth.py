"""API keys for the REST endpoints, and HTTP Basic users beside them (GWE's desktops use Basic).
An address sending wrong ones is locked out, longer and longer (429 with Retry-After)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import BasicAuth, web

from ..roles import Principal, Role
from .errors import Forbidden, Unauthorized
from .throttling import GUARD

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEYS: web.AppKey[list[bytes]] = web.AppKey("api_keys", list)
# Each key with who holds it and the role it grants (the `api_keys` setting).
KEY_HOLDERS: web.AppKey[list[tuple[bytes, Principal]]] = web.AppKey("key_holders", list)
# Who the request was let in as (a key's holder, a Basic user or a console session's owner).
PRINCIPAL = web.RequestKey("principal", Principal)
# (user, password) pairs from the `basic_auth_users` setting; Basic only makes sense over HTTPS.
BASIC_USERS: web.AppKey[list[tuple[bytes, bytes]]] = web.AppKey("basic_users", list)


def _presented_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _basic_user(header: str, users: list[tuple[bytes, bytes]]) -> Principal | None:
    """The configured user the Basic credentials match (an admin, as before roles); every pair
    is compared in constant time, so the answer's timing tells nothing about which part was
    wrong."""
    try:
        presented = BasicAuth.decode(header)
    except ValueError:
        return None
    login, password = presented.login.encode(), presented.password.encode()
    found = False
    for user, secret in users:
        found |= hmac.compare_digest(login, user) & hmac.compare_digest(password, secret)
    return Principal(f"basic:{presented.login}", Role.ADMIN) if found else None


def key_holder(app: web.Application, key: str) -> Principal | None:
    """Who holds ``key``, if it is configured (every key compared, in constant time)."""
    presented = key.encode()
    holder = None
    for configured, principal in app[KEY_HOLDERS]:
        if hmac.compare_digest(presented, configured):
            holder = principal
    return holder


def require_role(principal: Principal, needed: Role) -> None:
    """403 naming the role needed when ``principal``'s does not reach it."""
    if not principal.role.allows(needed):
        raise Forbidden(
            f"this needs the {needed.value} role; {principal.name} is {principal.role.value}",
            details=[{"field": "role", "needed": needed.value, "role": principal.role.value}],
        )


def _challenge(request: web.Request) -> dict[str, str]:
    basic = ', Basic realm="engagement"' if request.app.get(BASIC_USERS) else ""
    return {"WWW-Authenticate": "Bearer" + basic}


def api_key_required(handler: Handler, role: Role = Role.ADMIN) -> Handler:
    """Reject calls without one of the configured keys (``X-API-Key`` or ``Bearer``) or, when
    ``basic_auth_users`` is set, one of those users (``Authorization: Basic``); 403 when the
    key's role does not reach ``role``."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        # A locked-out address gets 429 whatever it sends: the lock is checked before the
        # answer, with the key's reset in the same step when the key is right.
        guard = request.app[GUARD]
        authorization = request.headers.get("Authorization", "")
        users = request.app.get(BASIC_USERS)
        if users and authorization[:6].lower() == "basic ":
            user = _basic_user(authorization, users)
            if user is None:
                await guard.check_locked(request)
                await guard.key_failed(request)
                raise Unauthorized("the user or password is not valid", headers=_challenge(request))
            await guard.key_accepted(request)
            request[PRINCIPAL] = user
            require_role(user, role)
            return await handler(request)
        key = _presented_key(request)
        holder = key_holder(request.app, key) if key is not None else None
        if holder is None:
            await guard.check_locked(request)
            if key is None:
                raise Unauthorized(
                    "an API key is required: send it as 'X-API-Key: <key>' or "
                    "'Authorization: Bearer <key>'",
                    headers=_challenge(request),
                )
            await guard.key_failed(request)
            raise Unauthorized("the API key is not valid", headers=_challenge(request))
        await guard.key_accepted(request)
        request[PRINCIPAL] = holder
        require_role(holder, role)
        return await handler(request)

    return wrapper

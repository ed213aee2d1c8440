"""Signing in and out of the console."""

from __future__ import annotations

import time

from aiohttp import web

from ..api.auth import PRINCIPAL, key_holder
from ..api.parsing import read_form
from ..api.policy import record
from ..api.throttling import GUARD, TooManyRequests
from .session import (
    COOKIE_PATH,
    CSRF_FIELD,
    SESSION,
    SESSION_COOKIE,
    SESSION_TTL_S,
    SESSIONS,
    check_csrf,
)
from .templating import redirect, render


def csrf_refused(request: web.Request) -> web.Response:
    """The answer to a console form without its session's token."""
    message = "This form expired or came from another site. Reload the page and try again."
    return render(request, "error.html", {"title": "Form refused", "message": message}, 403)


def safe_next(target: str) -> str | None:
    """Only back into the console: never to another site (``//host`` included)."""
    if target.startswith("/console/") and "\\" not in target:
        return target
    return None


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form: the API key."""
    next_url = safe_next(request.query.get("next", ""))
    return render(request, "login.html", {"next": next_url, "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    """Check the key; on success a new session, and on to the console. An address sending
    wrong keys waits longer and longer (429 meanwhile)."""
    form = await read_form(request)
    raw = form.get("key")
    key = raw.strip() if isinstance(raw, str) else ""
    next_url = safe_next(str(form.get("next", "")))
    guard = request.app[GUARD]
    holder = key_holder(request.app, key) if key else None
    try:  # a locked-out address is refused whatever it sent; a right key resets it
        await (guard.check_locked(request) if holder is None else guard.key_accepted(request))
    except TooManyRequests as exc:
        error = (
            f"Too many wrong keys from your address. Try again in {exc.headers['Retry-After']} s."
        )
        page = render(request, "login.html", {"next": next_url, "error": error}, status=429)
        page.headers.update(exc.headers)
        return page
    if holder is None:
        if key:
            await guard.key_failed(request)
        error = "That API key is not valid." if key else "Enter the API key."
        return render(request, "login.html", {"next": next_url, "error": error}, status=401)
    request[PRINCIPAL] = holder
    record(request, "console-login", 303)
    response = redirect(next_url or str(request.app.router["console-visitors"].url_for()))
    response.set_cookie(
        SESSION_COOKIE,
        request.app[SESSIONS].open(time.time(), holder),
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=guard.proxies.is_tls(request),
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session: revoked on the server, so a copy of the cookie is worthless too."""
    form = await read_form(request)
    if not check_csrf(request, str(form.get(CSRF_FIELD, ""))):
        return csrf_refused(request)
    if request[SESSION]:
        request.app[SESSIONS].revoke(request[SESSION])
    response = redirect(str(request.app.router["console-login"].url_for()))
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response

"""Console sign-in: the API key once, then a session cookie derived from it; CSRF tokens.

The cookie holds ``<expiry>.<HMAC-SHA256(key, expiry)>``: never the key, nothing about the
person. Changing the API keys ends every session. Forms carry a token derived from the session,
which another site cannot read (the cookie is HttpOnly and SameSite=Strict besides).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ..api.auth import API_KEYS
from ..api.errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "_eng_console"
COOKIE_PATH = "/console"  # the cookie goes to console URLs only
SESSION_TTL_S = 12 * 3600  # an agent's shift; then the key is asked again
CSRF_FIELD = "csrf"
EXPIRY_DIGITS_MAX = 12  # epoch seconds: 11 digits until the year 5138
# How the request was let in: its session token, or "" for an API key header (no CSRF needed:
# another site's form cannot send a header).
SESSION = web.RequestKey("console_session", str)


def session_token(key: bytes, expires_s: int) -> str:
    mac = hmac.new(key, f"console-session:{expires_s}".encode(), hashlib.sha256).hexdigest()
    return f"{expires_s}.{mac}"


def valid_session(keys: list[bytes], token: str, now_s: float) -> bool:
    expires, _, _ = token.partition(".")
    # ASCII digits of a plausible length only: int() takes '²'... and refuses 5,000 digits.
    if not (expires.isascii() and expires.isdigit() and len(expires) <= EXPIRY_DIGITS_MAX):
        return False
    if int(expires) < now_s:
        return False
    presented = token.encode(errors="replace")
    return any(
        hmac.compare_digest(presented, session_token(k, int(expires)).encode()) for k in keys
    )


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"console-csrf", hashlib.sha256).hexdigest()


def valid_key(request: web.Request, key: str) -> bool:
    presented = key.encode()
    return any(hmac.compare_digest(presented, k) for k in request.app[API_KEYS])


def _header_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _let_in(request: web.Request) -> bool:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and valid_session(request.app[API_KEYS], token, time.time()):
        request[SESSION] = token
        return True
    key = _header_key(request)
    if key is not None and valid_key(request, key):
        request[SESSION] = ""
        return True
    return False


def console_page(handler: Handler) -> Handler:
    """An HTML page: without a session (or key header), to the sign-in form and back."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not _let_in(request):
            target = str(request.app.router["console-login"].url_for())
            if request.method == "GET":  # a form posted after the session ended: start over
                target += f"?next={quote(request.path_qs, safe='/')}"
            return web.Response(status=303, headers={"Location": target})
        return await handler(request)

    return wrapper


def console_data(handler: Handler) -> Handler:
    """JSON or CSV for the console's pages and scripts: 401 without a session or key."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not _let_in(request):
            raise Unauthorized(
                "sign in at /console/login, or send the API key as 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return wrapper


def check_csrf(request: web.Request, form_token: str) -> bool:
    """A form posted with a session must carry that session's token."""
    session = request[SESSION]
    if not session:
        return True
    return hmac.compare_digest(form_token.encode(errors="replace"), csrf_token(session).encode())

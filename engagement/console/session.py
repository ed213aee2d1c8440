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
from .templating import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "_eng_console"
COOKIE_PATH = "/console"  # the cookie goes to console URLs only
SESSION_TTL_S = 12 * 3600  # an agent's shift; then the key is asked again
CSRF_FIELD = "csrf"
# How the request was let in: its session token, or "" for an API key header (no CSRF needed:
# another site's form cannot send a header).
SESSION = web.RequestKey("console_session", str)


def session_token(key: bytes, expires_s: int) -> str:
    mac = hmac.new(key, f"console-session:{expires_s}".encode(), hashlib.sha256).hexdigest()
    return f"{expires_s}.{mac}"


def valid_session(keys: list[bytes], token: str, now_s: float) -> bool:
    expires, _, _ = token.partition(".")
    if not expires.isdigit() or int(expires) < now_s:
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
            login = request.app.router["console-login"].url_for()
            raise web.HTTPSeeOther(f"{login}?next={quote(request.path_qs, safe='/')}")
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


def csrf_refused(request: web.Request) -> web.Response:
    return render(
        request,
        "error.html",
        {
            "title": "Form refused",
            "message": "This form expired or came from another site. Reload the page and try "
            "again.",
        },
        status=403,
    )


def _safe_next(target: str) -> str | None:
    """Only back into the console: never to another site (``//host`` included)."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form (the API key)."""
    next_url = _safe_next(request.query.get("next", ""))
    return render(request, "login.html", {"next": next_url, "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    """Check the key; on success a session cookie and on to the console."""
    form = await request.post()
    key = form.get("key")
    next_url = _safe_next(str(form.get("next", "")))
    if not isinstance(key, str) or not key.strip() or not valid_key(request, key.strip()):
        error = "That API key is not valid." if key else "Enter the API key."
        return render(request, "login.html", {"next": next_url, "error": error}, status=401)
    expires_s = int(time.time()) + SESSION_TTL_S
    token = session_token(key.strip().encode(), expires_s)
    response = web.HTTPSeeOther(next_url or str(request.app.router["console-visitors"].url_for()))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    raise response


@console_page
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session in this browser."""
    form = await request.post()
    if not check_csrf(request, str(form.get(CSRF_FIELD, ""))):
        return csrf_refused(request)
    response = web.HTTPSeeOther(str(request.app.router["console-login"].url_for()))
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response

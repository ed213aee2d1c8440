"""Console sign-in: the API key once, then a session: a random token the server keeps and
can revoke; CSRF tokens.

The cookie holds 256 random bits: never the key, nothing about the person. The server keeps
only a hash of each token with its expiry, in memory: signing out revokes it at once, and a
restart ends every session (agents sign in again; nothing else is lost). The cookie is
``Secure`` when the browser reached the engine over TLS (directly, or through a proxy in
``trusted_proxies``). Forms carry a token derived from the session, which another site cannot
read (the cookie is HttpOnly and SameSite=Strict besides).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from ..api.auth import PRINCIPAL, key_holder, require_role
from ..api.errors import Unauthorized
from ..api.throttling import GUARD
from ..roles import Principal, Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "_eng_console"
COOKIE_PATH = "/console"  # the cookie goes to console URLs only
SESSION_TTL_S = 12 * 3600  # an agent's shift; then the key is asked again
MAX_SESSIONS = 10_000  # far above a contact centre's agents; the oldest go first beyond
SESSION_TOKEN_BYTES = 32  # 256 bits: guessing one is hopeless
CSRF_FIELD = "csrf"
# How the request was let in: its session token, or "" for an API key header (no CSRF needed:
# another site's form cannot send a header).
SESSION = web.RequestKey("console_session", str)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode(errors="replace")).hexdigest()


class Sessions:
    """Open console sessions: token hash -> (expiry in s since the epoch, who signed in)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._expiry: dict[str, tuple[float, Principal]] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def open(self, now_s: float, who: Principal) -> str:
        if len(self._expiry) >= self.max_sessions:
            for digest in [d for d, (until, _) in self._expiry.items() if until <= now_s]:
                del self._expiry[digest]
            while len(self._expiry) >= self.max_sessions:
                del self._expiry[next(iter(self._expiry))]
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        self._expiry[_digest(token)] = (now_s + self.ttl_s, who)
        return token

    def valid(self, token: str, now_s: float) -> Principal | None:
        """Who holds this open session (None: unknown or expired)."""
        digest = _digest(token)
        found = self._expiry.get(digest)
        if found is None:
            return None
        until, who = found
        if until <= now_s:
            del self._expiry[digest]
            return None
        return who

    def revoke(self, token: str) -> None:
        self._expiry.pop(_digest(token), None)


SESSIONS = web.AppKey("console_sessions", Sessions)


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"console-csrf", hashlib.sha256).hexdigest()


def _header_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _let_in(request: web.Request) -> bool:
    token = request.cookies.get(SESSION_COOKIE, "")
    who = request.app[SESSIONS].valid(token, time.time()) if token else None
    if who is not None:
        request[SESSION] = token
        request[PRINCIPAL] = who
        return True
    key = _header_key(request)
    if key is None:
        return False
    guard = request.app[GUARD]
    holder = key_holder(request.app, key)
    if holder is None:
        await guard.check_locked(request)
        await guard.key_failed(request)
        return False
    await guard.key_accepted(request)  # 429 while the address is locked out
    request[SESSION] = ""
    request[PRINCIPAL] = holder
    return True


def console_page(handler: Handler, role: Role = Role.ADMIN) -> Handler:
    """An HTML page: without a session (or key header), to the sign-in form and back; 403
    when the role signed in does not reach ``role``."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not await _let_in(request):
            target = str(request.app.router["console-login"].url_for())
            if request.method == "GET":  # a form posted after the session ended: start over
                target += f"?next={quote(request.path_qs, safe='/')}"
            return web.Response(status=303, headers={"Location": target})
        require_role(request[PRINCIPAL], role)
        return await handler(request)

    return wrapper


def console_data(handler: Handler, role: Role = Role.ADMIN) -> Handler:
    """JSON or CSV for the console's pages and scripts: 401 without a session or key, 403
    when its role does not reach ``role``."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not await _let_in(request):
            raise Unauthorized(
                "sign in at /console/login, or send the API key as 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        require_role(request[PRINCIPAL], role)
        return await handler(request)

    return wrapper


def check_csrf(request: web.Request, form_token: str) -> bool:
    """A form posted with a session must carry that session's token."""
    session = request[SESSION]
    if not session:
        return True
    return hmac.compare_digest(form_token.encode(errors="replace"), csrf_token(session).encode())

"""Which site origins may use the browser endpoints, and the CORS headers they get."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable

import ada_url
from aiohttp import web

from .errors import Forbidden, HTTPError

log = logging.getLogger(__name__)

BrowserHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ORIGIN = web.RequestKey("origin", str)  # the allowed origin of a browser request
PREFLIGHT_MAX_AGE_S = 86400  # browsers cap it lower anyway; saves a round trip per page


class OriginPolicy:
    """Origin patterns such as ``https://*.shop.com`` or ``http://localhost:*``.

    ``*`` matches one run of host characters (letters, digits, dots, dashes), so it can
    stand for subdomains or a port but never for a scheme or a path.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = list(patterns)
        parts = [re.escape(p.rstrip("/")).replace(r"\*", "[A-Za-z0-9.-]*") for p in self.patterns]
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts) or "(?!)", re.IGNORECASE)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one policy per app, bounded cache
    def allows(self, origin: str) -> bool:
        return self._regex.fullmatch(origin) is not None

    def check(self, request: web.Request) -> str:
        """The request's allowed Origin, or Forbidden.

        Browsers send Origin on every cross-origin request and on POSTs; a same-origin GET
        (an EventSource on the engine's own demo pages) carries only a Referer.
        """
        origin = request.headers.get("Origin") or _referer_origin(request)
        if not origin:
            raise Forbidden("this endpoint is for browsers: the Origin header is missing")
        if not self.allows(origin):
            log.warning("refused origin %s on %s", origin, request.path)
            raise Forbidden(
                f"origin {origin!r} is not an allowed site; add it to allowed_origins",
                details=[{"field": "Origin", "message": "not in allowed_origins"}],
            )
        return origin


def _referer_origin(request: web.Request) -> str | None:
    if request.method not in ("GET", "HEAD"):
        return None
    referer = request.headers.get("Referer")
    return url_origin(referer) if referer else None


def url_origin(url: str, base: str | None = None) -> str | None:
    """The origin a browser gives ``url``, parsed as the WHATWG URL standard says (tabs and
    newlines dropped, backslashes read as slashes, userinfo and default ports left out);
    None for a URL that does not parse or has an opaque origin (``javascript:``, ``data:``)."""
    try:
        origin = ada_url.URL(url, base).origin if base else ada_url.URL(url).origin
    except ValueError:
        return None
    return None if origin == "null" else origin


# A page on any scheme: a URL relative to the page must stay on the page whatever its scheme.
_PAGE_BASES = ("http://page.invalid/", "https://page.invalid/")


def content_url_allowed(url: str, allowed_origins: Iterable[str]) -> bool:
    """Whether a page would load ``url`` only from an allowed origin, or from itself.

    Checked as the browser resolves it against the page, for a page on http and on https:
    ``/\\evil.example/x``, ``https:evil.example`` or ``//evil.example`` leave the page.
    """
    allowed = {url_origin(o) for o in allowed_origins} - {None}
    for base in _PAGE_BASES:
        origin = url_origin(url, base)
        if origin != base.rstrip("/") and origin not in allowed:
            return False
    return True


def cors_headers(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def browser_endpoint(
    policy_of: Callable[[web.Request], OriginPolicy],
) -> Callable[[BrowserHandler], BrowserHandler]:
    """Only allowed origins get in; their answers, errors included, carry CORS headers
    so that the tracker can read why a batch was refused instead of retrying it."""

    def decorate(handler: BrowserHandler) -> BrowserHandler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            origin = policy_of(request).check(request)
            request[ORIGIN] = origin
            try:
                response = await handler(request)
            except HTTPError as exc:
                response = exc.response()
            if not response.prepared:  # a stream set its headers before it started
                response.headers.update(cors_headers(origin))
            return response

        return wrapper

    return decorate


def preflight(policy_of: Callable[[web.Request], OriginPolicy]) -> BrowserHandler:
    """An OPTIONS handler answering CORS preflights for allowed origins."""

    async def handler(request: web.Request) -> web.StreamResponse:
        origin = policy_of(request).check(request)
        headers = {
            **cors_headers(origin),
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        }
        return web.Response(status=204, headers=headers)

    return handler

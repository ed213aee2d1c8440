"""A route's declaration: path, name, what OpenAPI says of it, and its access policy.

``policy`` has no default: a route cannot be declared without saying who may call it, and the
route table applies it (``api.policy.guard``), not the handler. ``role`` is the least role a
key or console session needs (admin unless the table says less); ``audit`` (by default: every
state-changing call let in by a key or a session) records the call in the audit log.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from ..roles import Role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


AT_CAPACITY = (503, "no room for a new visit (max_live_visits): try again after Retry-After")


# Each named route's least role, for pages that show only what their reader may use.
ROUTE_ROLES: web.AppKey[dict[str, Role]] = web.AppKey("route_roles", dict)


class Policy(enum.Enum):
    API_KEY = "api_key"  # servers: X-API-Key, Bearer or Basic (GWE)
    SITE = "site"  # browsers on an allowed site origin; answers carry CORS headers
    SITE_OR_API_KEY = "site_or_api_key"  # a page of an allowed site, or a server with a key
    CONSOLE_PAGE = "console_page"  # a console page: without a session, to the sign-in form
    CONSOLE_DATA = "console_data"  # console JSON/CSV: 401 without a session or key
    PUBLIC = "public"  # anyone (scripts, health, sign-in form, signed links checked inside)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    tag: str
    policy: Policy
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    content: str = "application/json"
    answers: tuple[tuple[int, str], ...] = ()  # other statuses it can answer (JSON errors)
    statuses: tuple[int, ...] = (200,)  # its success statuses, each answered with `response`
    role: Role = Role.ADMIN
    audit: bool | None = None  # None: state-changing calls with a key or a session

    @property
    def audited(self) -> bool:
        if self.audit is not None:
            return self.audit
        keyed = self.policy not in (Policy.PUBLIC, Policy.SITE)
        return keyed and self.method not in ("GET", "HEAD", "OPTIONS")

    @property
    def auth(self) -> bool:
        """An API key is accepted (and, for API_KEY, required)."""
        return self.policy in (Policy.API_KEY, Policy.SITE_OR_API_KEY)

    @property
    def browser(self) -> bool:
        """Browsers on allowed site origins may call it."""
        return self.policy in (Policy.SITE, Policy.SITE_OR_API_KEY)

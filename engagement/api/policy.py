"""The route table's access policies, applied to every route when it is added (one place, not
a decorator per handler that someone may forget): who may call it, the role a key or console
session needs, and whether the call goes into the audit log."""

from __future__ import annotations

import time

from aiohttp import web

from ..audit import AuditEntry
from ..console.session import console_data, console_page
from ..roles import Role
from .auth import PRINCIPAL, api_key_required
from .errors import HTTPError
from .origins import browser_endpoint
from .route import ROUTE_ROLES, Handler, Policy, Route
from .state import AUDIT, origins_of
from .throttling import GUARD


def guard(route: Route) -> Handler:
    """The route's handler behind its policy, recorded in the audit log if it says so (calls
    let in, and calls refused for their role; not those without valid credentials)."""
    guarded = _behind_policy(route)
    return _audited(route.name, guarded) if route.audited else guarded


def _behind_policy(route: Route) -> Handler:
    handler, policy, role = route.handler, route.policy, route.role
    if policy is Policy.API_KEY:
        return api_key_required(handler, role)
    if policy is Policy.SITE:
        return browser_endpoint(origins_of)(handler)
    if policy is Policy.SITE_OR_API_KEY:
        return _site_or_key(handler, role)
    if policy is Policy.CONSOLE_PAGE:
        return console_page(handler, role)
    if policy is Policy.CONSOLE_DATA:
        return console_data(handler, role)
    return handler


def record(request: web.Request, action: str, status: int) -> None:
    """An audit entry for this request, by whoever it was let in as."""
    audit, who = request.app.get(AUDIT), request.get(PRINCIPAL)
    if audit is None or who is None:
        return
    client = request.app[GUARD].proxies.client_address(request)
    target = dict(request.match_info)
    audit.record(AuditEntry(int(time.time() * 1000), who, action, target, status, client))


def _audited(action: str, handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except HTTPError as exc:
            record(request, action, exc.status)
            raise
        except web.HTTPException as exc:
            record(request, action, exc.status)
            raise
        record(request, action, response.status)
        return response

    return wrapper


def _site_or_key(handler: Handler, role: Role) -> Handler:
    keyed = api_key_required(handler, role)
    from_site = browser_endpoint(origins_of)(handler)

    async def wrapper(request: web.Request) -> web.StreamResponse:
        headers = request.headers
        from_page = "Origin" in headers or "Referer" in headers
        if from_page and "X-API-Key" not in headers and "Authorization" not in headers:
            return await from_site(request)
        return await keyed(request)  # a server, or nobody: 401 without a key

    return wrapper


def add_routes(app: web.Application, routes: list[Route]) -> None:
    roles = app.setdefault(ROUTE_ROLES, {})
    for route in routes:
        app.router.add_route(route.method, route.path, guard(route), name=route.name)
        roles[route.name] = route.role

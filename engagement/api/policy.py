"""The route table's access policies, applied to every route when it is added (one place, not
a decorator per handler that someone may forget)."""

from __future__ import annotations

from aiohttp import web

from ..console.session import console_data, console_page
from .auth import api_key_required
from .origins import browser_endpoint
from .route import Handler, Policy, Route
from .state import origins_of


def guard(route: Route) -> Handler:
    """The route's handler behind its policy."""
    handler, policy = route.handler, route.policy
    if policy is Policy.API_KEY:
        return api_key_required(handler)
    if policy is Policy.SITE:
        return browser_endpoint(origins_of)(handler)
    if policy is Policy.SITE_OR_API_KEY:
        return _site_or_key(handler)
    if policy is Policy.CONSOLE_PAGE:
        return console_page(handler)
    if policy is Policy.CONSOLE_DATA:
        return console_data(handler)
    return handler


def _site_or_key(handler: Handler) -> Handler:
    keyed = api_key_required(handler)
    from_site = browser_endpoint(origins_of)(handler)

    async def wrapper(request: web.Request) -> web.StreamResponse:
        headers = request.headers
        from_page = "Origin" in headers or "Referer" in headers
        if from_page and "X-API-Key" not in headers and "Authorization" not in headers:
            return await from_site(request)
        return await keyed(request)  # a server, or nobody: 401 without a key

    return wrapper


def add_routes(app: web.Application, routes: list[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, guard(route), name=route.name)

"""The route table applies each route's policy: no route is reachable without what it asks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.route import ROUTE_ROLES, Policy, Route
from engagement.api.routes import ROUTES
from engagement.console import CONSOLE_ROUTES

from .conftest import new_id

ID = new_id()
REFUSED = {
    Policy.API_KEY: 401,
    Policy.SITE_OR_API_KEY: 401,
    Policy.SITE: 403,
    Policy.CONSOLE_DATA: 401,
}


def url(client: TestClient[Any, Any], route: Route) -> str:
    names = re.findall(r"{(\w+)}", route.path)
    return str(client.app.router[route.name].url_for(**dict.fromkeys(names, ID)))


GUARDED = [r for r in ROUTES + CONSOLE_ROUTES if r.policy in REFUSED]


def test_every_route_declares_a_policy():
    assert all(isinstance(r.policy, Policy) for r in ROUTES + CONSOLE_ROUTES)
    with pytest.raises(TypeError):
        Route("GET", "/x", ROUTES[0].handler, "x", "meta")  # type: ignore[call-arg]


async def test_every_named_route_of_the_app_went_through_the_table(client: TestClient[Any, Any]):
    """Demo pages and the demo GMS included; only folders of static files are served as such."""
    names = set(client.app.router.named_resources())
    assert names - set(client.app[ROUTE_ROLES]) == {"demo", "console-static"}


@pytest.mark.parametrize("route", GUARDED, ids=lambda r: f"{r.method} {r.name}")
async def test_a_call_without_credentials_is_refused(client: TestClient[Any, Any], route: Route):
    r = await client.request(route.method, url(client, route))
    assert r.status == REFUSED[route.policy], await r.text()
    body = await r.json()
    assert body["error"] in ("unauthorized", "forbidden"), body


@pytest.mark.parametrize(
    "route",
    [r for r in CONSOLE_ROUTES if r.policy is Policy.CONSOLE_PAGE and r.method == "GET"],
    ids=lambda r: r.name,
)
async def test_a_console_page_without_a_session_goes_to_sign_in(
    client: TestClient[Any, Any], route: Route
):
    r = await client.get(url(client, route), allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"].startswith(str(client.app.router["console-login"].url_for()))

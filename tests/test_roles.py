"""Console users and API keys have roles (agent < supervisor < admin), declared per route in
the route table; state-changing actions are audited, readable by admins (issue 14, item 5)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.app import create_app
from engagement.roles import Role
from engagement.settings import ApiKey, Settings

from .conftest import API_KEY, ClientFactory, Factory, post_events

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
KEYS = {
    Role.AGENT: "agent-key-0123456789abcdef",
    Role.SUPERVISOR: "supervisor-key-0123456789",
    Role.ADMIN: API_KEY,  # a plain string: admin, as before roles
}
NAMES = {Role.AGENT: "desk-1", Role.SUPERVISOR: "floor-lead", Role.ADMIN: "key-1"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    keys: list[str | ApiKey] = [
        API_KEY,
        ApiKey(key=KEYS[Role.AGENT], role=Role.AGENT, name="desk-1"),
        ApiKey(key=KEYS[Role.SUPERVISOR], role=Role.SUPERVISOR, name="floor-lead"),
    ]
    return settings.model_copy(update={"api_keys": keys, "invites_dir": INVITES})


def as_(role: Role) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def test_plain_keys_are_admin_and_tables_name_their_role():
    settings = Settings(
        api_keys=["old-key", {"key": KEYS[Role.AGENT], "role": "agent", "name": "desk-1"}]
    )
    assert settings.configured_keys() == [
        ApiKey.model_construct(key="old-key", role=Role.ADMIN, name="key-1"),
        ApiKey(key=KEYS[Role.AGENT], role=Role.AGENT, name="desk-1"),
    ]


# (route name, method, path parts, body, least role)
ROUTES = [
    ("live-visits", "GET", {}, None, Role.AGENT),
    ("desktop-link", "POST", {"visitID": "A" * 32}, None, Role.AGENT),
    ("strategies", "GET", {}, None, Role.SUPERVISOR),
    ("availability-group", "PUT", {"group": "sales"}, {"agentsReady": 2}, Role.SUPERVISOR),
    ("report-strategies", "GET", {}, None, Role.SUPERVISOR),
    ("audit", "GET", {}, None, Role.ADMIN),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("name", "method", "parts", "body", "needed"), ROUTES)
async def test_each_role_reaches_its_routes_and_no_further(
    client: Client,
    role: Role,
    name: str,
    method: str,
    parts: dict[str, str],
    body: Any,
    needed: Role,
):
    url = client.app.router[name].url_for(**parts)
    r = await client.request(method, url, json=body, headers=as_(role))

    if role.allows(needed):
        assert r.status in (200, 404), await r.text()  # 404: the unknown visit's desktop link
    else:
        assert r.status == 403
        assert await r.json() == {
            "error": "forbidden",
            "message": f"this needs the {needed.value} role; {NAMES[role]} is {role.value}",
            "details": [{"field": "role", "needed": needed.value, "role": role.value}],
        }


async def sign_in(client: Client, role: Role) -> None:
    url = client.app.router["console-login-post"].url_for()
    r = await client.post(url, data={"key": KEYS[role]}, allow_redirects=False)
    assert r.status == 303, await r.text()


async def test_the_console_session_carries_the_role(client: Client):
    await sign_in(client, Role.AGENT)
    r = await client.get(client.app.router["console-visitors"].url_for())
    assert r.status == 200, await r.text()
    html = await r.text()
    assert "desk-1 (agent)" in html
    assert "Live visitors" in html
    assert "Past visits" in html
    for hidden in ("Strategy report", "Experiments", "Pacing", "Dry run"):
        assert hidden not in html
    r = await client.get(client.app.router["console-reports"].url_for())
    assert r.status == 403
    assert await r.json() == {
        "error": "forbidden",
        "message": "this needs the supervisor role; desk-1 is agent",
        "details": [{"field": "role", "needed": "supervisor", "role": "agent"}],
    }

    client.session.cookie_jar.clear()
    await sign_in(client, Role.SUPERVISOR)
    r = await client.get(client.app.router["console-reports"].url_for())
    assert r.status == 200, await r.text()
    html = await r.text()
    assert "floor-lead (supervisor)" in html
    for shown in ("Live visitors", "Past visits", "Strategy report", "Pacing", "Dry run"):
        assert shown in html


async def audit(client: Client, **query: str) -> dict[str, Any]:
    url = client.app.router["audit"].url_for().with_query(query)
    r = await client.get(url, headers=as_(Role.ADMIN))
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


def without_times(page: dict[str, Any], since_ms: int) -> list[dict[str, Any]]:
    entries = []
    for entry in page["entries"]:
        assert since_ms <= entry.pop("at") <= time.time() * 1000
        entry.pop("id")
        entries.append(entry)
    return entries


async def test_actions_are_audited_and_readable_by_admins_only(client: Client, factory: Factory):
    since_ms = int(time.time() * 1000)
    await post_events(client, factory.start())  # tracker events are not audited
    url = client.app.router["availability-group"].url_for(group="sales")
    r = await client.put(url, json={"agentsReady": 3}, headers=as_(Role.SUPERVISOR))
    assert r.status == 200, await r.text()
    r = await client.put(url, json={"agentsReady": 3}, headers=as_(Role.AGENT))
    assert r.status == 403
    await sign_in(client, Role.AGENT)
    visit = client.app.router["console-visit"].url_for(visitID=factory.visit_id)
    page = await client.get(visit)
    match = CSRF.search(await page.text())
    assert match is not None
    invite = client.app.router["console-invite"].url_for(visitID=factory.visit_id)
    form = {"csrf": match.group(1), "invite": "chat.html", "media": "chat", "agent": "Ada"}
    r = await client.post(invite, data=form)
    assert r.status == 200, await r.text()
    r = await client.post(
        client.app.router["console-logout"].url_for(), data={"csrf": match.group(1)}
    )
    assert r.status == 200, await r.text()

    page = await audit(client)
    client_ip = "127.0.0.1"
    assert without_times(page, since_ms) == [
        {"who": "desk-1", "role": "agent", "action": "console-logout", "target": {},
         "status": 303, "client": client_ip},
        {"who": "desk-1", "role": "agent", "action": "console-invite",
         "target": {"visitID": factory.visit_id}, "status": 303, "client": client_ip},
        {"who": "desk-1", "role": "agent", "action": "console-login", "target": {},
         "status": 303, "client": client_ip},
        {"who": "desk-1", "role": "agent", "action": "availability-group",
         "target": {"group": "sales"}, "status": 403, "client": client_ip},
        {"who": "floor-lead", "role": "supervisor", "action": "availability-group",
         "target": {"group": "sales"}, "status": 200, "client": client_ip},
    ]  # fmt: skip
    assert page["next"] is None

    for role in (Role.AGENT, Role.SUPERVISOR):
        r = await client.get(client.app.router["audit"].url_for(), headers=as_(role))
        assert r.status == 403


async def test_the_audit_log_pages_and_outlives_a_restart(
    aiohttp_client: ClientFactory, settings: Settings
):
    client = await aiohttp_client(create_app(settings))
    since_ms = int(time.time() * 1000)
    for group in ("a", "b", "c"):
        url = client.app.router["availability-group"].url_for(group=group)
        r = await client.put(url, json={"agentsReady": 1}, headers=as_(Role.ADMIN))
        assert r.status == 200, await r.text()
    await client.close()

    client = await aiohttp_client(create_app(settings))
    first = await audit(client, limit="2")
    assert [e["target"] for e in first["entries"]] == [{"group": "c"}, {"group": "b"}]
    assert first["next"] is not None
    rest = await audit(client, limit="2", before=str(first["next"]))
    assert without_times(rest, since_ms) == [
        {"who": "key-1", "role": "admin", "action": "availability-group",
         "target": {"group": "a"}, "status": 200, "client": "127.0.0.1"},
    ]  # fmt: skip
    assert rest["next"] is None

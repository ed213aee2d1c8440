"""The console over real HTTP: sign-in, live visitors, visit details, invite now, CSRF."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from engagement.api.state import REGISTRY
from engagement.app import create_app
from engagement.console import setup_console
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import API_KEY, AUTH, SITE, ClientFactory, Factory, new_id, post_events, url

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def console_app(settings: Settings) -> web.Application:
    """The engine with its console (added here until create_app does it itself)."""
    app = create_app(settings)
    if "console-visitors" not in app.router.named_resources():
        setup_console(app)
    return app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"invites_dir": INVITES})


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    return await aiohttp_client(console_app(settings))


async def sign_in(client: Client) -> None:
    r = await client.post(
        url(client, "console-login"), data={"key": API_KEY}, allow_redirects=False
    )
    assert r.status == 303, await r.text()


async def csrf_of(client: Client, path: str) -> str:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    match = CSRF.search(await r.text())
    assert match is not None
    return match.group(1)


async def live_visit(client: Client, factory: Factory, category: str = "") -> None:
    events = factory.start(f"{SITE}/products", "Products")
    events[1]["category"] = category
    await post_events(client, events)


# -- signing in --


async def test_login_page_is_a_form(client: Client):
    r = await client.get(url(client, "console-login"))

    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    html = await r.text()
    assert '<form method="post" action="/console/login">' in html
    assert 'name="key" type="password"' in html


@pytest.mark.parametrize(
    ("name", "parts", "query"),
    [
        ("console-visitors", {}, None),
        ("console-reports", {}, None),
        ("console-visit", {"visitID": "A" * 32}, {"tab": "events"}),
    ],
)
async def test_pages_send_to_login_when_signed_out(
    client: Client, name: str, parts: dict[str, str], query: dict[str, str] | None
):
    path = url(client, name, query, **parts)
    r = await client.get(path, allow_redirects=False)

    assert r.status == 303, await r.text()
    login, _, back = r.headers["Location"].partition("?next=")
    assert login == "/console/login"
    assert back.replace("%3F", "?").replace("%3D", "=") == path


async def test_form_posted_signed_out_goes_to_login_without_return(client: Client):
    r = await client.post(
        url(client, "console-invite", visitID="A" * 32), data={}, allow_redirects=False
    )

    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/console/login"


@pytest.mark.parametrize("name", ["console-visitors-json", "console-reports-csv"])
async def test_data_needs_a_session_or_key(client: Client, name: str):
    r = await client.get(url(client, name))

    assert r.status == 401, await r.text()
    assert await r.json() == {
        "error": "unauthorized",
        "message": "sign in at /console/login, or send the API key as 'X-API-Key: <key>'",
        "details": [],
    }


async def test_wrong_key_is_told_and_gets_no_session(client: Client):
    r = await client.post(
        url(client, "console-login"), data={"key": "not-the-key"}, allow_redirects=False
    )

    assert r.status == 401, await r.text()
    assert "That API key is not valid." in await r.text()
    assert "_eng_console" not in r.cookies
    r = await client.get(url(client, "console-visitors"), allow_redirects=False)
    assert r.status == 303


async def test_empty_key_is_asked_for(client: Client):
    r = await client.post(url(client, "console-login"), data={"key": ""}, allow_redirects=False)

    assert r.status == 401, await r.text()
    assert "Enter the API key." in await r.text()


async def test_right_key_opens_a_session(client: Client):
    r = await client.post(
        url(client, "console-login"), data={"key": API_KEY}, allow_redirects=False
    )

    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/console/"
    cookie = r.cookies["_eng_console"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie.value)
    assert API_KEY not in cookie.value
    for path in (
        url(client, "console-visitors"),
        url(client, "console-reports"),
        url(client, "console-visitors-json"),
    ):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 200, (path, await r.text())


async def test_login_goes_back_to_the_page_asked_for_and_never_elsewhere(client: Client):
    data = {"key": API_KEY, "next": "/console/reports?from=2024-05-01"}
    r = await client.post(url(client, "console-login"), data=data, allow_redirects=False)
    assert r.headers["Location"] == "/console/reports?from=2024-05-01"

    for elsewhere in (
        "//evil.example/console/",
        "https://evil.example/",
        url(client, "live-visits"),
    ):
        data = {"key": API_KEY, "next": elsewhere}
        r = await client.post(url(client, "console-login"), data=data, allow_redirects=False)
        assert r.headers["Location"] == "/console/", elsewhere


async def test_forged_or_expired_session_is_refused(client: Client):
    for token in ("9999999999." + "0" * 64, "1000000000.abc", "garbage"):
        client.session.cookie_jar.update_cookies({"_eng_console": token})
        r = await client.get(url(client, "console-visitors"), allow_redirects=False)
        assert r.status == 303, token


async def test_api_key_header_opens_the_console(client: Client):
    r = await client.get(url(client, "console-visitors-json"), headers=AUTH)

    assert r.status == 200, await r.text()


async def test_logout_ends_the_session(client: Client):
    await sign_in(client)
    csrf = await csrf_of(client, url(client, "console-visitors"))

    r = await client.post(url(client, "console-logout"), data={"csrf": csrf}, allow_redirects=False)

    assert r.status == 303, await r.text()
    assert r.headers["Location"] == "/console/login"
    r = await client.get(url(client, "console-visitors"), allow_redirects=False)
    assert r.status == 303


async def test_logout_needs_the_csrf_token(client: Client):
    await sign_in(client)

    r = await client.post(
        url(client, "console-logout"), data={"csrf": "0" * 64}, allow_redirects=False
    )

    assert r.status == 403, await r.text()
    assert "This form expired or came from another site." in await r.text()
    r = await client.get(url(client, "console-visitors"), allow_redirects=False)
    assert r.status == 200


# -- live visitors --


async def test_live_visitors_json(client: Client, factory: Factory):
    await live_visit(client, factory, category="products")
    await post_events(client, [factory.event("SignIn", {"firstName": "Ada", "customerID": "C-1"})])
    await sign_in(client)

    r = await client.get(url(client, "console-visitors-json"))

    assert r.status == 200, await r.text()
    body = await r.json()
    [visit] = body["visits"]
    page = visit["currentPage"]
    assert body == {
        "version": visit["version"],
        "count": 1,
        "full": True,
        "serverTime": body["serverTime"],
        "gone": [],
        "visits": [
            {
                "version": client.app[REGISTRY].version,
                "visitID": factory.visit_id,
                "globalVisitID": factory.global_visit_id,
                "identity": "authenticated",
                "name": "Ada",
                "returning": False,
                "startedAt": visit["startedAt"],
                "lastSeenAt": visit["lastSeenAt"],
                "timeOnSiteS": visit["timeOnSiteS"],
                "pagesViewed": 1,
                "categories": {"products": 1},
                "engagement": None,
                "engagementStrategy": None,
                "currentPage": {
                    "pageID": factory.page_id,
                    "url": f"{SITE}/products",
                    "title": "Products",
                    "referrer": "",
                    "utm": {},
                    "enteredAt": page["enteredAt"],
                    "exitedAt": None,
                    "focused": True,
                    "focusedMs": 0,
                    "timeOnPageS": page["timeOnPageS"],
                },
            }
        ],
    }


async def test_live_visitors_page_lists_them(client: Client, factory: Factory):
    await live_visit(client, factory, category="products")
    await sign_in(client)

    r = await client.get(url(client, "console-visitors"))

    assert r.status == 200, await r.text()
    html = await r.text()
    visit = client.app[REGISTRY].get(factory.visit_id)
    assert visit is not None
    assert f'<tr data-visit="{factory.visit_id}" data-started="{visit.started_at}">' in html
    assert f'href="/console/visits/{factory.visit_id}"' in html
    assert '<span class="tag">products 1</span>' in html
    assert 'data-source="/console/visitors.json"' in html
    assert '<script src="/console/static/console.js' in html


async def test_console_script_and_styles_are_served(client: Client):
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        r = await client.get(url(client, "console-static", filename=name))
        assert r.status == 200, name
        assert kind in r.headers["Content-Type"]


# -- one visit --


async def test_unknown_visit_is_404(client: Client):
    await sign_in(client)

    for visit_id in (new_id(), "not-an-id"):
        r = await client.get(url(client, "console-visit", visitID=visit_id))
        assert r.status == 404, await r.text()
        assert f"No visit {visit_id} in the history" in await r.text()


async def test_visit_page_shows_pages_events_and_invite_form(client: Client, factory: Factory):
    await live_visit(client, factory)
    await post_events(client, [factory.event("AddToCart", {"sku": "<b>WH15</b>", "price": 1199})])
    await sign_in(client)

    r = await client.get(url(client, "console-visit", visitID=factory.visit_id))

    assert r.status == 200, await r.text()
    html = await r.text()
    assert "on the site" in html
    assert f"{SITE}/products" in html
    assert "AddToCart" in html
    assert "&#34;sku&#34;: &#34;&lt;b&gt;WH15&lt;/b&gt;&#34;" in html  # autoescaped
    assert "<b>WH15</b>" not in html
    options = re.findall(r'<option value="([^"]+)">', html)
    assert options == ["callback.html", "chat.html", "custom.html", "chat", "callback", "custom"]


async def test_closed_visit_page_has_no_invite_form(client: Client, factory: Factory):
    await live_visit(client, factory)
    client.app[REGISTRY].close_idle(now_ms() + 10_000_000)
    await sign_in(client)

    r = await client.get(url(client, "console-visit", visitID=factory.visit_id))

    assert r.status == 200, await r.text()
    html = await r.text()
    assert "ended" in html
    assert f"{SITE}/products" in html
    assert "Invite now" not in html


# -- invite now --


async def invite(client: Client, factory: Factory, **fields: str) -> Any:
    csrf = await csrf_of(client, url(client, "console-visit", visitID=factory.visit_id))
    form = {"csrf": csrf, "invite": "chat.html", "media": "chat", **fields}
    return await client.post(url(client, "console-invite", visitID=factory.visit_id), data=form)


async def attempts_of(client: Client, factory: Factory) -> list[dict[str, Any]]:
    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    attempts: list[dict[str, Any]] = (await r.json())["attempts"]
    return attempts


async def test_invite_now_creates_an_agent_attempt(client: Client, factory: Factory):
    await live_visit(client, factory)
    await sign_in(client)

    r = await invite(client, factory, agent="Ada", media="callback", invite="callback.html")

    assert r.status == 200, await r.text()
    assert str(r.url.path) == f"/console/visits/{factory.visit_id}"
    [attempt] = await attempts_of(client, factory)
    assert f"Invitation callback.html (callback) sent: attempt {attempt['attemptID']}." in (
        await r.text()
    )
    assert {k: attempt[k] for k in ("origin", "strategy", "invite", "media", "state")} == {
        "origin": "agent",
        "strategy": "agent:Ada",
        "invite": "callback.html",
        "media": "callback",
        "state": "offered",
    }
    assert attempt["pageID"] == factory.page_id
    assert [t["state"] for t in attempt["transitions"]] == ["detected", "offered"]


async def test_invite_now_without_a_name_is_the_console(client: Client, factory: Factory):
    await live_visit(client, factory)
    await sign_in(client)

    await invite(client, factory, agent="  ")

    [attempt] = await attempts_of(client, factory)
    assert attempt["strategy"] == "agent:console"


async def test_invite_now_refuses_a_busy_visit(client: Client, factory: Factory):
    await live_visit(client, factory)
    await sign_in(client)
    await invite(client, factory)

    r = await invite(client, factory, invite="custom.html", media="custom")

    assert r.status == 200, await r.text()
    html = await r.text()
    assert (
        "Not sent: this visit already has a live engagement (agent:console, offered). "
        "Wait until it ends." in html
    )
    assert [a["invite"] for a in await attempts_of(client, factory)] == ["chat.html"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"invite": "_base.html"}, "Not sent: no invitation template &#39;_base.html&#39;."),
        ({"invite": "../pyproject.toml"}, "Not sent: no invitation template"),
        ({"media": "fax"}, "Not sent: media: Input should be &#39;chat&#39;, &#39;callback&#39;"),
    ],
)
async def test_invite_now_refuses_bad_choices(
    client: Client, factory: Factory, fields: dict[str, str], message: str
):
    await live_visit(client, factory)
    await sign_in(client)

    r = await invite(client, factory, **fields)

    assert r.status == 200, await r.text()
    assert message in await r.text()
    assert await attempts_of(client, factory) == []


async def test_invite_now_refuses_an_ended_visit(client: Client, factory: Factory):
    await live_visit(client, factory)
    await sign_in(client)
    csrf = await csrf_of(client, url(client, "console-visit", visitID=factory.visit_id))
    client.app[REGISTRY].close_idle(now_ms() + 10_000_000)

    r = await client.post(
        url(client, "console-invite", visitID=factory.visit_id),
        data={"csrf": csrf, "invite": "chat.html", "media": "chat"},
    )

    assert r.status == 200, await r.text()
    assert f"Visit {factory.visit_id} is not on the site any more." in await r.text()
    assert await attempts_of(client, factory) == []


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
async def test_invite_now_without_the_csrf_token_is_refused(
    client: Client, factory: Factory, csrf: str | None
):
    await live_visit(client, factory)
    await sign_in(client)
    form = {"invite": "chat.html", "media": "chat"}
    if csrf is not None:
        form["csrf"] = csrf

    r = await client.post(url(client, "console-invite", visitID=factory.visit_id), data=form)

    assert r.status == 403, await r.text()
    assert await attempts_of(client, factory) == []


async def test_invite_now_with_the_api_key_needs_no_csrf(client: Client, factory: Factory):
    await live_visit(client, factory)

    r = await client.post(
        url(client, "console-invite", visitID=factory.visit_id),
        data={"invite": "chat.html", "media": "chat", "agent": "crm"},
        headers=AUTH,
        allow_redirects=False,
    )

    assert r.status == 303, await r.text()
    [attempt] = await attempts_of(client, factory)
    assert (attempt["origin"], attempt["strategy"]) == ("agent", "agent:crm")

"""Abuse over real HTTP: callbacks and chats throttled per number, visitor, address and overall;
wrong API keys locked out per address; console sessions random, revocable, Secure over TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port

from engagement.api.state import LIFECYCLE
from engagement.settings import Settings

from .conftest import API_KEY, AUTH, SITE, ClientFactory, Factory, post_events
from .test_operations import sample

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
STRATEGIES = """
strategies:
  - name: call-me
    when: {event: WantCall}
    limits: {per_visit: 10, cooldown_after_callback_s: 0}
    offer: {invite: callback.html, media: callback}
  - name: chat-me
    when: {event: WantChat}
    limits: {per_visit: 10, cooldown_after_chat_s: 0}
    offer: {invite: chat.html, media: chat}
"""
NUMBER = "+33 1 23 45 67 89"
THROTTLED_TEXT = "We have received too many requests. Please try again later, or call us."


class GMSDouble:
    """Records every callback and chat request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.url = ""
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)
        self.app.router.add_post("/genesys/1/service/request-chat", self.chat)

    async def callback(self, request: web.Request) -> web.Response:
        self.requests.append(str((await request.post())["_customer_number"]))
        return web.json_response({"_id": f"gms-{len(self.requests)}"})

    async def chat(self, request: web.Request) -> web.Response:
        self.requests.append("chat")
        return web.json_response({"_chatIxnAPI-CREATE-URL": "http://chat/x", "_id": "chat-1"})


@pytest.fixture
async def gms(aiohttp_server: Any) -> GMSDouble:
    double = GMSDouble()
    server: TestServer = await aiohttp_server(double.app)
    double.url = str(server.make_url(""))
    return double


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, gms: GMSDouble, overrides: Any) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "s.yaml").write_text(STRATEGIES)
    return settings.model_copy(
        update={
            "strategies_dir": folder,
            "invites_dir": INVITES,
            "gms_url": gms.url,
            "gms_chat": True,
            **overrides,
        }
    )


def visit_of(visitor: Factory) -> Factory:
    """Another visit of the same visitor (globalVisitID)."""
    visit = Factory()
    visit.global_visit_id = visitor.global_visit_id
    return visit


async def offered(client: Client, factory: Factory, event: str) -> str:
    """A new visit offered a callback (WantCall) or chat (WantChat): its attempt's ID."""
    await post_events(client, factory.start())
    before = set(client.app[LIFECYCLE].by_id)
    await post_events(client, [factory.event(event)])
    (attempt_id,) = set(client.app[LIFECYCLE].by_id) - before
    return attempt_id


async def ask_callback(
    client: Client, factory: Factory, number: str = NUMBER, headers: dict[str, str] | None = None
) -> Any:
    attempt_id = await offered(client, factory, "WantCall")
    body = {
        "attemptID": attempt_id,
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "_customer_number": number,
    }
    url = client.app.router["callbacks"].url_for()
    return await client.post(url, json=body, headers={"Origin": SITE, **(headers or {})})


async def ask_chat(client: Client, factory: Factory) -> Any:
    attempt_id = await offered(client, factory, "WantChat")
    body = {"attemptID": attempt_id, "visitID": factory.visit_id, "pageID": factory.page_id}
    url = client.app.router["chats"].url_for()
    return await client.post(url, json=body, headers={"Origin": SITE})


async def metrics(client: Client) -> str:
    r = await client.get(client.app.router["metrics"].url_for())
    return await r.text()


async def assert_refused(r: Any, field: str, limit: str, most_s: int) -> None:
    """A 429 for ``limit``, to retry within ``most_s`` (less as the test's own time passes)."""
    assert r.status == 429, await r.text()
    wait_s = int(r.headers["Retry-After"])
    assert most_s - 60 < wait_s <= most_s
    assert await r.json() == refused(field, limit, wait_s)


def refused(field: str, limit: str, retry_after_s: int) -> dict[str, Any]:
    return {
        "error": "too_many_requests",
        "message": THROTTLED_TEXT,
        "details": [
            {"field": field, "message": f"{limit} limit reached", "retryAfterS": retry_after_s}
        ],
    }


# -- callbacks and chats --


@pytest.mark.parametrize("overrides", [{"callback_limit_per_number": "1/hour"}])
async def test_one_number_gets_one_callback_whoever_asks(client: Client, gms: GMSDouble):
    r = await ask_callback(client, Factory())
    assert r.status == 202, await r.text()

    r = await ask_callback(client, Factory(), number="+33 (1) 23-45-67-89")  # the same number

    assert r.headers["Access-Control-Allow-Origin"] == SITE  # the invitation can read why
    await assert_refused(r, "_customer_number", "callback_number", 3600)
    r = await ask_callback(client, Factory(), number="+33 9 87 65 43 21")
    assert r.status == 202, await r.text()
    assert 'engagement_throttled_total{limit="callback_number"} 1.0' in await metrics(client)


@pytest.mark.parametrize("overrides", [{"callback_limit_per_visitor": "2/hour"}])
async def test_one_visitor_gets_two_callbacks_an_hour(client: Client):
    visitor = Factory()
    for number in ("+33 1 00 00 00 01", "+33 1 00 00 00 02"):
        r = await ask_callback(client, visit_of(visitor), number=number)
        assert r.status == 202, await r.text()

    r = await ask_callback(client, visit_of(visitor), number="+33 1 00 00 00 03")

    await assert_refused(r, "visitID", "callback_visitor", 1800)


@pytest.mark.parametrize(
    "overrides",
    [{"callback_limit_per_address": "1/hour", "trusted_proxies": ["127.0.0.0/8"]}],
)
async def test_addresses_behind_a_trusted_proxy_are_told_apart(client: Client):
    first = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    r = await ask_callback(client, Factory(), "+33 1 00 00 00 01", first)
    assert r.status == 202, await r.text()
    other = {"X-Forwarded-For": "203.0.113.9, 198.51.100.2"}  # a forged first hop: ignored
    r = await ask_callback(client, Factory(), "+33 1 00 00 00 02", other)
    assert r.status == 202, await r.text()

    r = await ask_callback(client, Factory(), "+33 1 00 00 00 03", first)

    await assert_refused(r, "client", "callback_address", 3600)


@pytest.mark.parametrize("overrides", [{"callback_limit_per_address": "1/hour"}])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(client: Client):
    r = await ask_callback(client, Factory(), "+33 1 00 00 00 01", {"X-Forwarded-For": "1.1.1.1"})
    assert r.status == 202, await r.text()

    r = await ask_callback(client, Factory(), "+33 1 00 00 00 02", {"X-Forwarded-For": "2.2.2.2"})

    await assert_refused(r, "client", "callback_address", 3600)


@pytest.mark.parametrize("overrides", [{"callback_limit_overall": "2/hour"}])
async def test_all_callbacks_together_are_limited(client: Client, gms: GMSDouble):
    for i in range(2):
        r = await ask_callback(client, Factory(), number=f"+33 1 00 00 00 0{i}")
        assert r.status == 202, await r.text()

    r = await ask_callback(client, Factory(), number="+33 1 00 00 00 09")

    await assert_refused(r, "all", "callback_overall", 1800)


@pytest.mark.parametrize("overrides", [{"chat_limit_per_visitor": "1/hour"}])
async def test_one_visitor_gets_one_gms_chat_an_hour(client: Client, gms: GMSDouble):
    visitor = Factory()
    r = await ask_chat(client, visit_of(visitor))
    assert r.status == 200, await r.text()

    r = await ask_chat(client, visit_of(visitor))

    await assert_refused(r, "visitID", "chat_visitor", 3600)
    assert gms.requests == ["chat"]
    assert 'engagement_throttled_total{limit="chat_visitor"} 1.0' in await metrics(client)


# -- wrong API keys --


@pytest.mark.parametrize("overrides", [{"auth_free_failures": 2, "auth_lockout_base_s": 600}])
async def test_wrong_api_keys_lock_the_address_out(client: Client, factory: Factory):
    await post_events(client, factory.start())
    url = client.app.router["visit"].url_for(visitID=factory.visit_id)
    for _ in range(3):
        r = await client.get(url, headers={"X-API-Key": "guess"})
        assert r.status == 401, await r.text()

    r = await client.get(url, headers=AUTH)  # even the right key waits

    assert r.status == 429, await r.text()
    assert 500 < int(r.headers["Retry-After"]) <= 600
    body = await r.json()
    assert body["error"] == "too_many_requests"
    assert body["details"][0]["field"] == "X-API-Key"
    text = await metrics(client)
    assert sample(text, "engagement_auth_failures_total") == 3
    assert sample(text, "engagement_auth_lockouts_total") == 1


@pytest.mark.parametrize("overrides", [{"auth_free_failures": 1, "auth_lockout_base_s": 600}])
async def test_console_sign_in_is_locked_out_too(client: Client):
    url = client.app.router["console-login-post"].url_for()
    for status in (401, 401, 429):
        r = await client.post(url, data={"key": "guess"}, allow_redirects=False)
        assert r.status == status, await r.text()

    r = await client.post(url, data={"key": API_KEY}, allow_redirects=False)

    assert r.status == 429, await r.text()
    wait_s = r.headers["Retry-After"]
    assert 500 < int(wait_s) <= 600
    assert f"Too many wrong keys from your address. Try again in {wait_s} s." in await r.text()


@pytest.mark.parametrize("overrides", [{"auth_free_failures": 1}])
async def test_a_right_key_clears_the_count(client: Client):
    url = client.app.router["strategies"].url_for()
    for _ in range(3):
        assert (await client.get(url, headers={"X-API-Key": "typo"})).status == 401
        assert (await client.get(url, headers=AUTH)).status == 200


# -- console sessions --


async def sign_in(client: Client, headers: dict[str, str] | None = None) -> Any:
    url = client.app.router["console-login-post"].url_for()
    r = await client.post(url, data={"key": API_KEY}, headers=headers, allow_redirects=False)
    assert r.status == 303, await r.text()
    return r.cookies["_eng_console"]


async def test_every_sign_in_gets_its_own_random_token(client: Client):
    first, second = await sign_in(client), await sign_in(client)

    assert first.value != second.value
    assert len(first.value) == 43  # 256 bits, URL-safe base64


async def test_signing_out_revokes_the_token_everywhere(client: Client, aiohttp_client: Any):
    token = (await sign_in(client)).value
    page = client.app.router["console-visitors"].url_for()
    r = await client.get(page)
    csrf = (await r.text()).split('name="csrf" value="')[1][:64]

    r = await client.post(
        client.app.router["console-logout"].url_for(), data={"csrf": csrf}, allow_redirects=False
    )
    assert r.status == 303, await r.text()

    elsewhere: Client = await aiohttp_client(client.server)  # a copy of the cookie
    elsewhere.session.cookie_jar.update_cookies({"_eng_console": token})
    r = await elsewhere.get(page, allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"].startswith(str(client.app.router["console-login"].url_for()))


@pytest.mark.parametrize(
    ("overrides", "headers", "secure"),
    [
        ({}, {}, ""),
        ({}, {"X-Forwarded-Proto": "https"}, ""),  # anyone can send the header
        ({"trusted_proxies": ["10.0.0.0/8"]}, {"X-Forwarded-Proto": "https"}, ""),
        ({"trusted_proxies": ["127.0.0.1"]}, {"X-Forwarded-Proto": "https"}, True),
        ({"trusted_proxies": ["127.0.0.1"]}, {"X-Forwarded-Proto": "http"}, ""),
    ],
    ids=["plain", "untrusted-peer", "other-proxy", "trusted-proxy", "proxy-over-http"],
)
async def test_cookie_is_secure_when_the_browser_used_tls(
    client: Client, headers: dict[str, str], secure: bool | str
):
    cookie = await sign_in(client, headers)

    assert cookie["secure"] == secure


async def test_sessions_survive_nothing_but_the_process(
    aiohttp_client: ClientFactory, settings: Settings
):
    from engagement.app import create_app

    first: Client = await aiohttp_client(create_app(settings))
    token = (await sign_in(first)).value
    restarted: Client = await aiohttp_client(create_app(settings))
    restarted.session.cookie_jar.update_cookies({"_eng_console": token})

    r = await restarted.get(
        restarted.app.router["console-visitors"].url_for(), allow_redirects=False
    )

    assert r.status == 303


async def test_the_api_document_says_where_429_can_come(client: Client):
    r = await client.get(client.app.router["openapi"].url_for())
    paths = (await r.json())["paths"]

    throttled = sorted(
        f"{method.upper()} {path}"
        for path, ops in paths.items()
        for method, op in ops.items()
        if "429" in op["responses"] and "x-role" not in op  # x-role: a key's routes
    )
    assert throttled == ["POST /callbacks", "POST /chats"]
    locked = [op for ops in paths.values() for op in ops.values() if "x-role" in op]
    assert locked
    assert all("429" in op["responses"] for op in locked)


@pytest.mark.parametrize(
    "overrides", [{"ready_max_callback_queue": 1, "gms_url": f"http://127.0.0.1:{unused_port()}"}]
)
async def test_ready_is_503_while_callbacks_pile_up(client: Client):
    for number in ("+33 1 00 00 00 01", "+33 1 00 00 00 02"):  # GMS is unreachable
        r = await ask_callback(client, Factory(), number=number)
        assert r.status == 202, await r.text()

    r = await client.get(client.app.router["ready"].url_for())

    assert r.status == 503, await r.text()
    assert (await r.json())["checks"]["callbackQueue"] == "2 callbacks waiting, more than 1"

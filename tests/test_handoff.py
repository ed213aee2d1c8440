"""Hand-off against a GMS double and a webhook sink: real aiohttp servers that record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engagement.api.state import LIFECYCLE, OUTBOX
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings
from engagement.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events, url

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
STRATEGIES = """
strategies:
  - name: call-me
    when: {event: WantCall}
    offer: {invite: callback.html, media: callback, params: {service: sales-cb}}
  - name: chat-me
    when: {event: WantChat}
    offer: {invite: chat.html, media: chat}
  - name: bot-me
    when: {event: WantBot}
    offer: {invite: custom.html, media: custom}
"""


class GMSDouble:
    """Answers like GMS and records every request: mode 'up', 'down' (503) or 'reject' (400)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.chat_mode = "up"
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/genesys/1/service/callback/{service}", self.callback)
        self.app.router.add_post("/genesys/1/service/request-chat", self.chat)

    async def callback(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append(
            {
                "service": request.match_info["service"],
                "form": form,
                "mode": self.mode,
                "auth": request.headers.get("Authorization"),
            }
        )
        if self.mode == "down":
            return web.json_response({"message": "unavailable"}, status=503)
        if self.mode == "reject":
            return web.json_response({"message": "Invalid _desired_time"}, status=400)
        return web.json_response({"_id": f"gms-{len(self.requests)}"})

    async def chat(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"service": "request-chat", "form": form, "mode": self.chat_mode})
        if self.chat_mode == "down":
            return web.json_response({"message": "no agent"}, status=503)
        return web.json_response({"_chatIxnAPI-CREATE-URL": "http://chat/x", "_id": "chat-1"})


@pytest.fixture
async def gms(aiohttp_server: Any) -> tuple[GMSDouble, TestServer]:
    double = GMSDouble()
    server: TestServer = await aiohttp_server(double.app)
    return double, server


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, gms: tuple[GMSDouble, TestServer]) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "s.yaml").write_text(STRATEGIES)
    return settings.model_copy(
        update={
            "strategies_dir": folder,
            "invites_dir": INVITES,
            "gms_url": str(gms[1].make_url("")),
            "gms_user": "engine",
            "gms_password": "pw",
            "gms_extra": {"_brand": "demo-shop"},
            "gms_chat": True,
        }
    )


async def accepted_attempt(client: Client, factory: Factory, event: str) -> str:
    await post_events(client, factory.start())
    await post_events(client, [factory.event(event)])
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    attempt_id: str = visit["attempts"][-1]["attemptID"]
    return attempt_id


async def send_callback(client: Client, factory: Factory, attempt_id: str, **form: str) -> Any:
    body = {
        "attemptID": attempt_id,
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "_customer_number": "+33 1 23 45 67 89",
        "_desired_time": "now",
        **form,
    }
    return await client.post(url(client, "callbacks"), json=body, headers={"Origin": SITE})


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 5) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def attempt_of(client: Client, factory: Factory) -> dict[str, Any]:
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    attempt: dict[str, Any] = visit["attempts"][-1]
    return attempt


async def test_accepted_callback_reaches_gms_with_the_exact_fields(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    double = gms[0]
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id)
    assert r.status == 202, await r.text()
    answer = await r.json()
    assert answer["desiredTime"] == "now"
    assert answer["message"] == "Thank you! We will call you back as soon as possible."
    await until(lambda: _completed(client, factory))
    (received,) = double.requests
    assert received["service"] == "sales-cb"
    assert received["auth"] == "Basic ZW5naW5lOnB3"  # engine:pw
    assert received["form"] == {
        "_customer_number": "+33123456789",
        "_desired_time": "now",
        "_brand": "demo-shop",
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "webengagement": "",
        "_engagement_request_id": answer["requestID"],
    }
    attempt = await attempt_of(client, factory)
    assert attempt["handoff"]["gmsID"] == "gms-1"
    # GMS took it: the callback's engagement is complete, with GMS's _id kept.
    assert attempt["transitions"][-2:] == [
        {
            "state": "accepted",
            "at": attempt["transitions"][-2]["at"],
            "reason": "callback requested",
        },
        {
            "state": "completed",
            "at": attempt["transitions"][-1]["at"],
            "reason": "GMS callback gms-1",
        },
    ]
    # The same form sent again (a double click) is still one callback.
    again = await send_callback(client, factory, attempt_id)
    assert (await again.json())["requestID"] == answer["requestID"]
    assert len(double.requests) == 1


async def _launched(client: Client, factory: Factory) -> bool:
    return (await attempt_of(client, factory))["state"] == "launched"


async def _completed(client: Client, factory: Factory) -> bool:
    return (await attempt_of(client, factory))["state"] == "completed"


async def test_bad_phone_and_time_are_explained(client: Client, factory: Factory):
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id, _customer_number="12ab")
    assert r.status == 400
    body = await r.json()
    assert body["details"][0]["field"] == "_customer_number"
    assert body["message"].startswith("Please enter a phone number")
    r = await send_callback(client, factory, attempt_id, _desired_time="2001-01-01T10:00:00Z")
    assert r.status == 400
    assert (await r.json())["details"][0] == {
        "field": "_desired_time",
        "message": "That time is in the past.",
    }
    r = await send_callback(client, factory, attempt_id, _desired_time="+1h")
    assert r.status == 202
    answer = await r.json()
    assert answer["desiredTime"].endswith(".000Z")
    # The visitor is at UTC+1 (timezoneOffset -60): the time is theirs.
    local = datetime.fromisoformat(answer["desiredTime"].replace("Z", "+00:00")) + timedelta(
        hours=1
    )
    assert answer["message"] == (
        f"Thank you! We will call you back on {local:%d/%m} at {local:%H:%M}."
    )


async def test_gms_down_then_back(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    double = gms[0]
    double.mode = "down"
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id)
    assert r.status == 202, await r.text()
    outbox = client.app[OUTBOX]
    request_id = (await r.json())["requestID"]
    await until(lambda: _retry_planned(outbox, request_id))
    assert await outbox.pending() == 1
    double.mode = "up"
    await outbox.deliver_due(now_ms() + 120_000)  # the next retry, without waiting for it
    assert [r["mode"] for r in double.requests] == ["down", "up"]
    assert await outbox.pending() == 0
    await until(lambda: _completed(client, factory))


async def test_a_callback_gms_takes_late_is_completed_not_expired(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    """GMS down for longer than accepted_expiration_s (120 s): the request waits in the outbox
    (up to a day), and its attempt waits with it instead of failing as never launched."""
    double = gms[0]
    double.mode = "down"
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id)
    assert r.status == 202, await r.text()
    lifecycle, outbox = client.app[LIFECYCLE], client.app[OUTBOX]
    request_id = (await r.json())["requestID"]
    await until(lambda: _retry_planned(outbox, request_id))
    hour_later = now_ms() + 3_600_000
    lifecycle.expire_due(hour_later)  # GMS still down an hour later
    assert (await attempt_of(client, factory))["state"] == "accepted"

    double.mode = "up"
    await outbox.deliver_due(hour_later)
    await until(lambda: _completed(client, factory))
    attempt = await attempt_of(client, factory)
    assert [(t["state"], t["reason"]) for t in attempt["transitions"][-2:]] == [
        ("accepted", "callback requested"),
        ("completed", f"GMS callback gms-{len(double.requests)}"),
    ]


async def _retry_planned(outbox: Any, request_id: str) -> bool:
    """GMS refused the first try, and the outbox has planned the next (the row let go)."""
    row = await outbox.get(request_id)
    return row is not None and row["tries"] >= 1 and row["claimed_until"] == 0


async def _count(double: GMSDouble, n: int) -> bool:
    return len(double.requests) >= n


async def test_restart_between_accept_and_gms_recovery_delivers_once(
    aiohttp_client: ClientFactory,
    settings: Settings,
    factory: Factory,
    gms: tuple[GMSDouble, TestServer],
):
    double = gms[0]
    double.mode = "down"
    client = await aiohttp_client(create_app(settings))
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id)
    assert r.status == 202
    request_id = (await r.json())["requestID"]
    await until(lambda: _count(double, 1))
    await client.close()  # the engine stops with the callback still owed

    double.mode = "up"
    client = await aiohttp_client(create_app(settings))
    await client.app[OUTBOX].deliver_due(now_ms() + 120_000)
    await until(lambda: _count(double, 2))
    await asyncio.sleep(0.2)
    delivered = [r for r in double.requests if r["mode"] == "up"]
    assert len(delivered) == 1
    assert delivered[0]["form"]["_engagement_request_id"] == request_id
    row = await client.app[OUTBOX].get(request_id)
    assert row is not None
    assert (row["state"], row["gms_id"]) == ("delivered", "gms-2")
    attempt = client.app[LIFECYCLE].by_id[attempt_id]
    assert attempt.state.value == "completed"


async def test_gms_rejection_is_recorded_and_shown(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    gms[0].mode = "reject"
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    assert (await send_callback(client, factory, attempt_id)).status == 202

    async def failed() -> bool:
        return (await attempt_of(client, factory))["state"] == "failed"

    await until(failed)
    attempt = await attempt_of(client, factory)
    assert attempt["transitions"][-1]["reason"] == (
        'GMS answered 400: {"message": "Invalid _desired_time"}'
    )
    assert len(gms[0].requests) == 1  # a 4xx is not retried


async def test_gms_chat_and_no_agent(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    attempt_id = await accepted_attempt(client, factory, "WantChat")
    body = {"attemptID": attempt_id, "visitID": factory.visit_id, "pageID": factory.page_id}
    r = await client.post(url(client, "chats"), json=body, headers={"Origin": SITE})
    assert r.status == 200, await r.text()
    assert await r.json() == {"chatURL": "http://chat/x", "gmsID": "chat-1"}
    assert gms[0].requests[-1]["form"] == {
        "_brand": "demo-shop",
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "webengagement": "",
    }
    # Launched: the visit gets no new invitation while the chat lasts.
    await post_events(client, [factory.event("WantCall")])
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    assert [a["strategy"] for a in visit["attempts"]] == ["chat-me"]

    other = Factory()
    gms[0].chat_mode = "down"
    attempt_id = await accepted_attempt(client, other, "WantChat")
    body = {"attemptID": attempt_id, "visitID": other.visit_id, "pageID": other.page_id}
    r = await client.post(url(client, "chats"), json=body, headers={"Origin": SITE})
    assert r.status == 503
    assert (await r.json())["message"] == (
        "No agent is available right now. Please try again in a moment."
    )


async def test_custom_media_webhook_is_signed(
    aiohttp_client: ClientFactory, aiohttp_server: Any, settings: Settings, factory: Factory
):
    got: list[tuple[dict[str, Any], bool]] = []

    async def sink(request: web.Request) -> web.Response:
        body = await request.read()
        ok = request.headers[SIGNATURE_HEADER] == sign("k", request.headers[TIMESTAMP_HEADER], body)
        got.append((json.loads(body), ok))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", sink)
    server: TestServer = await aiohttp_server(app)
    settings = settings.model_copy(
        update={"custom_webhook_url": str(server.make_url("/hook")), "webhook_secret": "k"}
    )
    client = await aiohttp_client(create_app(settings))
    attempt_id = await accepted_attempt(client, factory, "WantBot")
    query = {"visitID": factory.visit_id, "pageID": factory.page_id, "code": "accepted"}
    r = await client.get(
        url(client, "disposition", attemptID=attempt_id), params=query, headers={"Origin": SITE}
    )
    assert r.status == 200, await r.text()
    await until(lambda: _launched(client, factory))
    payload, signed = got[0]
    assert signed
    assert payload["attachedData"] == {
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "webengagement": "",
    }
    assert payload["attempt"]["attemptID"] == attempt_id


async def test_slow_gms_never_has_one_callback_twice_in_flight(
    aiohttp_client: ClientFactory,
    aiohttp_server: Any,
    settings: Settings,
    factory: Factory,
    caplog: pytest.LogCaptureFixture,
):
    """GMS slower than gms_timeout_s: the retry waits, the log says why, one delivery."""
    in_flight, most, got = 0, 0, []

    async def slow_callback(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        got.append(dict(await request.post()))
        try:
            if len(got) == 1:
                await asyncio.sleep(0.6)  # past the engine's 0.3 s: it gives up on this one
            return web.json_response({"_id": f"gms-{len(got)}"})
        finally:
            in_flight -= 1

    app = web.Application()
    app.router.add_post("/genesys/1/service/callback/{service}", slow_callback)
    server: TestServer = await aiohttp_server(app)
    settings = settings.model_copy(
        update={"gms_url": str(server.make_url("")), "gms_timeout_s": 0.3}
    )
    client = await aiohttp_client(create_app(settings))
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    assert (await send_callback(client, factory, attempt_id)).status == 202
    await until(lambda: _count_list(got, 1))
    # Asked again while the first request is still out: nothing more is sent.
    await client.app[OUTBOX].deliver_due(now_ms() + 120_000)
    await until(lambda: _completed(client, factory))
    assert most == 1
    request_ids = {form["_engagement_request_id"] for form in got}
    assert len(request_ids) == 1
    timeouts = [r.getMessage() for r in caplog.records if "did not answer" in r.getMessage()]
    assert timeouts == [
        f"callback {request_ids.pop()}: GMS did not answer within 0.3 s (gms_timeout_s); "
        "try 2 in 1 s"
    ]


async def _count_list(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_a_visit_says_why_a_matching_strategy_did_not_invite(
    client: Client, factory: Factory
):
    """Strict mode holds the visit (a chat invitation is live): the callback strategy that
    matched is recorded as held back, in the visit API and on the console's visit page."""
    await accepted_attempt(client, factory, "WantChat")
    await post_events(client, [factory.event("WantCall")])
    url = client.app.router["visit"].url_for(visitID=factory.visit_id)
    visit = await (await client.get(url, headers=AUTH)).json()
    assert [a["strategy"] for a in visit["attempts"]] == ["chat-me"]
    (held,) = visit["heldBack"]
    assert held == {
        "at": held["at"],
        "strategy": "call-me",
        "reason": "strict mode: an engagement is live",
    }
    page = client.app.router["console-visit"].url_for(visitID=factory.visit_id)
    html = await (await client.get(page, headers=AUTH)).text()
    assert "call-me</td><td>strict mode: an engagement is live" in html

"""Push streams, GWE notify and gateway, dispositions and invitations, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engagement.api.state import LIFECYCLE
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings
from engagement.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events, url

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
STRATEGY = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    limits: {cooldown_after_decline_s: 3600, per_visit: 5}
    offer: {invite: chat.html, media: chat, params: {queue: sales, title: "<b>Hi</b>"}}
  - name: ask-crm
    decide: external
    when: {event: AskCRM}
    offer: {invite: callback.html, media: callback}
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "s.yaml").write_text(STRATEGY)
    return settings.model_copy(
        update={"strategies_dir": folder, "invites_dir": INVITES, "push_heartbeat_s": 0.2}
    )


class Stream:
    """An SSE client reading frames the way a browser's EventSource does."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def frame(self, timeout_s: float = 5) -> dict[str, Any]:
        """The next message frame (comments and retry lines skipped)."""
        while True:
            raw = await asyncio.wait_for(self.response.content.readuntil(b"\n\n"), timeout_s)
            fields = dict(
                line.split(": ", 1) for line in raw.decode().strip().split("\n") if ": " in line
            )
            if "data" in fields:
                data: dict[str, Any] = json.loads(fields["data"])
                assert int(fields["id"]) == data["id"]
                return data

    async def raw(self, timeout_s: float = 5) -> bytes:
        return await asyncio.wait_for(self.response.content.readuntil(b"\n\n"), timeout_s)  # type: ignore[no-any-return]


async def open_stream(client: Client, factory: Factory, since: int = 0, **headers: str) -> Stream:
    query = {"visitID": factory.visit_id, "pageID": factory.page_id, "since": str(since)}
    r = await client.get(url(client, "stream", query), headers={"Origin": SITE, **headers})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "text/event-stream"
    assert r.headers["Access-Control-Allow-Origin"] == SITE
    return Stream(r)


async def live_visit(client: Client, factory: Factory) -> None:
    await post_events(client, factory.start())


NOTIFY = [
    {
        "page": None,
        "channel": "gpe.appendContent",
        "data": {"url": f"{SITE}/offer.html", "method": "GET", "container": "body"},
    }
]


# -- GWE notify --


async def test_notify_reaches_the_page_stream(client: Client, factory: Factory):
    await live_visit(client, factory)
    stream = await open_stream(client, factory)
    message = [{**NOTIFY[0], "page": factory.page_id}]
    r = await client.post(
        url(client, "notify", visitID=factory.visit_id), json=message, headers=AUTH
    )
    assert r.status == 200, await r.text()
    assert await r.read() == b""  # GWE answers with a bare status
    frame = await stream.frame()
    assert (frame["channel"], frame["data"]) == ("gpe.appendContent", NOTIFY[0]["data"])


async def test_notify_errors(client: Client, factory: Factory):
    path = url(client, "notify", visitID=factory.visit_id)
    r = await client.post(path, json=NOTIFY)
    assert r.status == 401
    r = await client.post(path, json=NOTIFY, headers=AUTH)
    assert r.status == 404
    assert (await r.json())["details"] == [{"field": "visitID", "message": "unknown"}]
    await live_visit(client, factory)
    cases = [
        ([], ""),
        ([{"channel": "bad channel!"}], "0.channel"),
        ([{"channel": "gpe.appendContent", "data": {}}], "0"),
        ([{**NOTIFY[0], "page": "nope"}], "0.page"),
        ({"channel": "x"}, ""),
    ]
    for body, field in cases:
        r = await client.post(path, json=body, headers=AUTH)
        assert r.status == 400, body
        assert (await r.json())["details"][0]["field"] == (field or "body"), body
    foreign = [{**NOTIFY[0], "data": {"url": "https://evil.example/x.html"}}]
    r = await client.post(path, json=foreign, headers=AUTH)
    assert r.status == 400
    assert (await r.json())["details"] == [{"field": "0.data.url", "message": "origin not allowed"}]


# -- streams --


async def test_messages_sent_before_the_stream_opens_are_delivered_once(
    client: Client, factory: Factory
):
    await live_visit(client, factory)
    path = url(client, "notify", visitID=factory.visit_id)
    for n in range(3):
        body = [{"channel": "gpe.publish", "data": {"event": "Promo", "data": {"n": n}}}]
        assert (await client.post(path, json=body, headers=AUTH)).status == 200
    stream = await open_stream(client, factory)
    frames = [await stream.frame() for _ in range(3)]
    assert [f["data"]["data"]["n"] for f in frames] == [0, 1, 2]
    ids = [f["id"] for f in frames]
    assert ids == sorted(ids)
    stream.response.close()

    # Reconnecting with Last-Event-ID (what EventSource does) replays only what came after.
    body = [{"channel": "gpe.publish", "data": {"event": "Promo", "data": {"n": 3}}}]
    assert (await client.post(path, json=body, headers=AUTH)).status == 200
    again = await open_stream(client, factory, **{"Last-Event-ID": str(ids[1])})
    assert [(await again.frame())["data"]["data"]["n"] for _ in range(2)] == [2, 3]


async def test_a_message_for_one_page_skips_the_others(client: Client, factory: Factory):
    await live_visit(client, factory)
    first_page = factory.page_id
    other = await open_stream(client, factory)
    factory.page_id = new_id()
    mine = await open_stream(client, factory)
    body = [
        {"page": factory.page_id, "channel": "gpe.publish", "data": {"event": "Mine"}},
        {"page": first_page, "channel": "gpe.publish", "data": {"event": "Other"}},
    ]
    path = url(client, "notify", visitID=factory.visit_id)
    assert (await client.post(path, json=body, headers=AUTH)).status == 200
    assert (await mine.frame())["data"]["event"] == "Mine"
    assert (await other.frame())["data"]["event"] == "Other"


async def test_stream_heartbeats_and_origin(client: Client, factory: Factory):
    stream = await open_stream(client, factory)
    assert await stream.raw() == b"retry: 2000\n\n"
    assert await stream.raw() == b": ping\n\n"
    query = {"visitID": factory.visit_id, "pageID": factory.page_id}
    path = url(client, "stream", query)
    assert (await client.get(path, headers={"Origin": "https://evil.example"})).status == 403
    r = await client.get(url(client, "stream", {**query, "pageID": "x"}), headers={"Origin": SITE})
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "pageID"


# -- invitations and dispositions --


async def invited(client: Client, factory: Factory) -> tuple[Stream, dict[str, Any]]:
    await live_visit(client, factory)
    stream = await open_stream(client, factory)
    await post_events(client, [factory.event("AddToCart", {"price": 900})])
    frame = await stream.frame()
    assert frame["channel"] == "gpe.invite"
    return stream, frame["data"]


async def disposition(client: Client, factory: Factory, attempt_id: str, code: str) -> Any:
    query = {"visitID": factory.visit_id, "pageID": factory.page_id, "code": code}
    return await client.get(
        url(client, "disposition", attemptID=attempt_id), params=query, headers={"Origin": SITE}
    )


async def test_invitation_is_pushed_rendered_and_answered(client: Client, factory: Factory):
    stream, invite = await invited(client, factory)
    attempt_id = invite["attemptID"]
    assert invite == {
        "attemptID": attempt_id,
        "url": f"/invites/{attempt_id}.html?visitID={factory.visit_id}",
        "media": "chat",
        "timeoutS": 30,
        "params": {"queue": "sales", "title": "<b>Hi</b>"},
    }
    r = await client.get(invite["url"], headers={"Origin": SITE})
    assert r.status == 200, await r.text()
    html = await r.text()
    assert 'role="dialog"' in html
    assert 'data-eng-action="accept"' in html
    assert "&lt;b&gt;Hi&lt;/b&gt;" in html  # autoescaped: strategy params never inject markup
    assert "<b>Hi</b>" not in html

    for code, state in [
        ("shown", "shown"),
        ("shown", "shown"),
        ("accepted", "accepted"),
        ("accepted", "accepted"),
        ("shown", "accepted"),
    ]:
        r = await disposition(client, factory, attempt_id, code)
        assert r.status == 200, await r.text()
        assert await r.json() == {"attemptID": attempt_id, "state": state}
    r = await disposition(client, factory, attempt_id, "declined")
    assert r.status == 409
    assert (await r.json())["message"] == f"attempt {attempt_id} is accepted; cannot be declined"
    closing = await stream.frame()
    assert (closing["channel"], closing["data"]) == (
        "gpe.closeInvite",
        {"attemptID": attempt_id, "reason": "accepted"},
    )

    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    (attempt,) = visit["attempts"]
    assert [t["state"] for t in attempt["transitions"]] == [
        "detected",
        "offered",
        "shown",
        "accepted",
    ]


async def test_decline_starts_the_cool_down(client: Client, factory: Factory):
    stream, invite = await invited(client, factory)
    assert (await disposition(client, factory, invite["attemptID"], "declined")).status == 200
    closing = await stream.frame()
    assert closing["channel"] == "gpe.closeInvite"
    await post_events(client, [factory.event("AddToCart", {"price": 1200})])
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    assert [a["state"] for a in visit["attempts"]] == ["declined"]


async def test_ended_attempts_are_forgotten_slice_by_slice(client: Client, factory: Factory):
    _, invite = await invited(client, factory)
    attempt_id = invite["attemptID"]
    assert (await disposition(client, factory, attempt_id, "declined")).status == 200
    lifecycle = client.app[LIFECYCLE]
    later = now_ms() + 121_000  # past the push messages' TTL: no page can ask for it again
    assert lifecycle.forget_old(later, [new_id()]) == 0  # a slice without it
    assert attempt_id in lifecycle.by_id
    assert lifecycle.forget_old(later, [attempt_id, new_id()]) == 1
    assert attempt_id not in lifecycle.by_id


async def test_a_form_being_filled_holds_the_invitation(client: Client, factory: Factory):
    _, invite = await invited(client, factory)
    attempt_id = invite["attemptID"]
    assert (await disposition(client, factory, attempt_id, "shown")).status == 200
    assert (await disposition(client, factory, attempt_id, "interacting")).status == 200
    lifecycle = client.app[LIFECYCLE]
    lifecycle.tick(now_ms() + 60_000)  # past the 30 s timeout
    assert lifecycle.by_id[attempt_id].state.value == "shown"
    lifecycle.tick(now_ms() + 121_000)  # past the 120 s of a form
    assert lifecycle.by_id[attempt_id].state.value == "timed_out"


async def test_disposition_errors(client: Client, factory: Factory):
    _, invite = await invited(client, factory)
    r = await disposition(client, factory, new_id(), "shown")
    assert r.status == 404
    r = await disposition(client, factory, invite["attemptID"], "maybe")
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "code"
    query = {"visitID": factory.visit_id, "code": "shown"}
    path = url(client, "disposition", query, attemptID=invite["attemptID"])
    assert (await client.get(path, headers={"Origin": "https://evil.example"})).status == 403
    other = Factory()
    r = await disposition(client, other, invite["attemptID"], "shown")
    assert r.status == 404  # another visit cannot touch this attempt


async def test_invite_in_the_visitor_language(client: Client, factory: Factory):
    events = factory.start()
    for e in events:
        e["languageCode"] = "fr-FR"
    await post_events(client, events)
    stream = await open_stream(client, factory)
    await post_events(client, [factory.event("AddToCart", {"price": 900}, languageCode="fr-FR")])
    invite = (await stream.frame())["data"]
    html = await (await client.get(invite["url"], headers={"Origin": SITE})).text()
    assert "Discuter maintenant" in html
    assert 'lang="fr"' in html


# -- the gateway: outside decisions --


async def test_engage_a_new_attempt_and_strict_mode(client: Client, factory: Factory):
    await live_visit(client, factory)
    stream = await open_stream(client, factory)
    body = {
        "ixnProfile": {
            "visitID": factory.visit_id,
            "invite": "custom.html",
            "media": "custom",
            "params": {"button": "Book a demo"},
        }
    }
    r = await client.post(url(client, "engage"), json=body, headers=AUTH)
    assert r.status == 200, await r.text()
    state = await r.json()
    assert state["state"] == "offered"
    assert (await stream.frame())["data"]["attemptID"] == state["attemptID"]
    r = await client.post(url(client, "engage"), json=body, headers=AUTH)
    assert r.status == 409
    assert "already has a live engagement" in (await r.json())["message"]

    r = await client.post(
        url(client, "noengage"),
        headers=AUTH,
        json={"cancelData": {"attemptID": state["attemptID"], "reason": "x"}},
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["state"] == "cancelled"
    assert (await stream.frame())["channel"] == "gpe.closeInvite"


async def test_gateway_errors(client: Client, factory: Factory):
    r = await client.post(url(client, "engage"), json={"ixnProfile": {}})
    assert r.status == 401
    r = await client.post(url(client, "engage"), json={"ixnProfile": {}}, headers=AUTH)
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "ixnProfile.visitID"
    r = await client.post(
        url(client, "engage"),
        headers=AUTH,
        json={"ixnProfile": {"visitID": factory.visit_id}},
    )
    assert r.status == 400
    assert "give invite and media" in (await r.json())["message"]
    r = await client.post(
        url(client, "noengage"), headers=AUTH, json={"cancelData": {"attemptID": new_id()}}
    )
    assert r.status == 404


async def test_external_decision_through_the_webhook(
    aiohttp_client: ClientFactory, aiohttp_server: Any, settings: Settings, factory: Factory
):
    received: list[tuple[dict[str, Any], str, str]] = []

    async def decide(request: web.Request) -> web.Response:
        body = await request.read()
        received.append(
            (json.loads(body), request.headers[SIGNATURE_HEADER], request.headers[TIMESTAMP_HEADER])
        )
        assert request.headers[SIGNATURE_HEADER] == sign(
            "s3cret", request.headers[TIMESTAMP_HEADER], body
        )
        return web.Response(status=204)

    crm = web.Application()
    crm.router.add_post("/decide", decide)
    crm_server: TestServer = await aiohttp_server(crm)
    settings = settings.model_copy(
        update={
            "decision_webhook_url": str(crm_server.make_url("/decide")),
            "webhook_secret": "s3cret",
        }
    )
    client = await aiohttp_client(create_app(settings))
    await live_visit(client, factory)
    await post_events(client, [factory.event("AskCRM")])
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.02)
    payload = received[0][0]
    assert payload["event"] == "engagement.detected"
    assert payload["attempt"]["state"] == "detected"
    assert payload["visit"]["visitID"] == factory.visit_id
    attempt_id = payload["attempt"]["attemptID"]

    body = {"ixnProfile": {"visitID": factory.visit_id, "attemptID": attempt_id}}
    r = await client.post(url(client, "engage"), json=body, headers=AUTH)
    assert r.status == 200, await r.text()
    assert await r.json() == {"attemptID": attempt_id, "state": "offered"}


async def test_shutdown_ends_open_streams(client: Client, factory: Factory):
    stream = await open_stream(client, factory)
    assert await stream.raw() == b"retry: 2000\n\n"
    await client.app.shutdown()  # what a stopping engine does first
    rest = await asyncio.wait_for(stream.response.content.read(), 5)
    assert b"retry" not in rest  # the stream ended: EOF, not a hang until a timeout


async def test_launched_before_accepted_implies_the_acceptance(client: Client, factory: Factory):
    _, invite = await invited(client, factory)
    attempt_id = invite["attemptID"]
    assert (await disposition(client, factory, attempt_id, "shown")).status == 200
    r = await disposition(client, factory, attempt_id, "launched")
    assert r.status == 200, await r.text()
    assert (await r.json())["state"] == "launched"
    r = await disposition(client, factory, attempt_id, "accepted")  # the late one
    assert (await r.json())["state"] == "launched"
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    transitions = visit["attempts"][0]["transitions"]
    assert [t["state"] for t in transitions] == [
        "detected",
        "offered",
        "shown",
        "accepted",
        "launched",
    ]
    assert transitions[3]["reason"] == "implied by launched"

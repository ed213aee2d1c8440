"""What of the visit travels with a hand-off (settings user_data, like GWE's userData section),
and GMS chats created from GMS's documented request-chat answer; against a recording GMS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engagement.app import create_app
from engagement.settings import Settings, UserData

from . import test_handoff as handoff
from .conftest import SITE, ClientFactory, Factory, post_events, url
from .test_handoff import Client, GMSDouble, accepted_attempt, send_callback, until
from .test_notifications import open_stream

GMS_CHAT_ID = "0F7D2C9A8E3B4C1D"
CREATE_PATH = f"/genesys/1/service/{GMS_CHAT_ID}/ixn/chat"  # GMS Chat API v1: a REST path
ATTACH = ["UserInfo.customerTier", "SignIn.customerID", "VisitStarted.timezoneOffset"]


class DocumentedGMS(GMSDouble):
    """Answers request-chat with the documented shape: the create URL is a path on GMS."""

    async def chat(self, request: web.Request) -> web.Response:
        self.requests.append({"service": "request-chat", "form": dict(await request.post())})
        return web.json_response({"_chatIxnAPI-CREATE-URL": CREATE_PATH, "_id": GMS_CHAT_ID})


@pytest.fixture
async def gms(aiohttp_server: Any) -> tuple[GMSDouble, TestServer]:
    double = DocumentedGMS()
    server: TestServer = await aiohttp_server(double.app)
    return double, server


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, gms: tuple[GMSDouble, TestServer]) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "s.yaml").write_text(handoff.STRATEGIES)
    return settings.model_copy(
        update={
            "strategies_dir": folder,
            "invites_dir": handoff.INVITES,
            "gms_url": str(gms[1].make_url("")),
            "gms_chat": True,
            "user_data": UserData(attach=ATTACH),
        }
    )


async def known_visitor(client: Client, factory: Factory) -> None:
    await post_events(client, factory.start())
    await post_events(
        client,
        [
            factory.event("UserInfo", {"firstName": "Ada", "lastName": "Lovelace",
                                       "email": "ada@example.com", "customerTier": "gold"}),
            factory.event("SignIn", {"customerID": "C-1"}),
        ],
    )  # fmt: skip


async def test_callback_carries_the_listed_fields_of_the_visit(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    await known_visitor(client, factory)
    attempt_id = await accepted_attempt(client, factory, "WantCall")
    r = await send_callback(client, factory, attempt_id)
    assert r.status == 202, await r.text()
    request_id = (await r.json())["requestID"]

    async def sent() -> bool:
        return bool(gms[0].requests)

    await until(sent)
    assert gms[0].requests[0]["form"] == {
        "_customer_number": "+33123456789",
        "_desired_time": "now",
        "customerTier": "gold",
        "customerID": "C-1",
        "timezoneOffset": "-60",
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "webengagement": "",
        "_engagement_request_id": request_id,
    }


async def test_chat_invitation_brings_the_fields_and_the_form_prefill(
    client: Client, factory: Factory
):
    await known_visitor(client, factory)
    stream = await open_stream(client, factory)
    await post_events(client, [factory.event("WantChat")])
    frame = await stream.frame()
    assert frame["channel"] == "gpe.invite"
    assert frame["data"] == {
        "attemptID": frame["data"]["attemptID"],
        "url": f"/invites/{frame['data']['attemptID']}.html?visitID={factory.visit_id}",
        "media": "chat",
        "timeoutS": 30,
        "params": {},
        "userData": {"customerTier": "gold", "customerID": "C-1", "timezoneOffset": "-60"},
        "form": {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"},
    }


async def test_gms_chat_from_the_documented_request_chat_answer(
    client: Client, factory: Factory, gms: tuple[GMSDouble, TestServer]
):
    await known_visitor(client, factory)
    attempt_id = await accepted_attempt(client, factory, "WantChat")
    body = {"attemptID": attempt_id, "visitID": factory.visit_id, "pageID": factory.page_id}
    r = await client.post(url(client, "chats"), json=body, headers={"Origin": SITE})
    assert r.status == 200, await r.text()
    # The create URL is GMS's REST path, made absolute on the configured GMS: not a page.
    base = str(gms[1].make_url("")).rstrip("/")
    assert await r.json() == {"chatURL": base + CREATE_PATH, "gmsID": GMS_CHAT_ID}
    assert gms[0].requests == [
        {
            "service": "request-chat",
            "form": {
                "customerTier": "gold",
                "customerID": "C-1",
                "timezoneOffset": "-60",
                "visitID": factory.visit_id,
                "pageID": factory.page_id,
                "webengagement": "",
            },
        }
    ]


async def test_custom_webhook_carries_the_listed_fields_of_the_visit(
    aiohttp_client: ClientFactory, aiohttp_server: Any, settings: Settings, factory: Factory
):
    got: list[dict[str, Any]] = []

    async def sink(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", sink)
    server: TestServer = await aiohttp_server(app)
    hook = {"custom_webhook_url": str(server.make_url("/hook"))}
    client = await aiohttp_client(create_app(settings.model_copy(update=hook)))
    await known_visitor(client, factory)
    attempt_id = await accepted_attempt(client, factory, "WantBot")
    query = {"visitID": factory.visit_id, "pageID": factory.page_id, "code": "accepted"}
    r = await client.get(
        url(client, "disposition", attemptID=attempt_id), params=query, headers={"Origin": SITE}
    )
    assert r.status == 200, await r.text()

    async def sent() -> bool:
        return bool(got)

    await until(sent)
    assert got[0]["attachedData"] == {
        "customerTier": "gold",
        "customerID": "C-1",
        "timezoneOffset": "-60",
        "visitID": factory.visit_id,
        "pageID": factory.page_id,
        "webengagement": "",
    }

"""Identifiers without third-party cookies: the engine's first-party cookie, single-use link
tokens between linked domains, and Widgets' chat session kept with the visitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.linking import LINKS
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.privacy.links import Link
from engagement.settings import Settings

from .conftest import AUTH, ClientFactory, Factory, new_id, post_events, url

SHOP, PAY, EVIL = "http://shop.test", "http://www.shop-pay.test", "http://evil.test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "allowed_origins": [SHOP, PAY, EVIL], "linked_domains": ["shop.test", "shop-pay.test"],
    })  # fmt: skip


async def post(client: TestClient[Any, Any], name: str, body: dict[str, Any], origin: str) -> Any:
    return await client.post(url(client, name), json=body, headers={"Origin": origin})


async def live_visit(client: TestClient[Any, Any]) -> Factory:
    factory = Factory()
    await post_events(client, factory.start(SHOP + "/"), origin=SHOP)
    return factory


async def issue(client: TestClient[Any, Any], f: Factory, key: str | None = None) -> str:
    body = {"visitID": f.visit_id, "globalVisitID": f.global_visit_id, "key": key}
    r = await post(client, "link-issue", body, SHOP)
    assert r.status == 200, await r.text()
    token: str = (await r.json())["token"]
    return token


# ---- link tokens ---------------------------------------------------------------------------


async def test_a_token_carries_the_visit_to_a_linked_domain_once(client):
    f = await live_visit(client)
    key = new_id()
    token = await issue(client, f, key)
    assert f.visit_id not in token  # no ID in URLs
    assert f.global_visit_id not in token

    r = await post(client, "link-redeem", {"token": token}, PAY)

    assert r.status == 200, await r.text()
    assert await r.json() == {"visitID": f.visit_id, "globalVisitID": f.global_visit_id,
                              "key": key}  # fmt: skip
    again = await post(client, "link-redeem", {"token": token}, PAY)
    assert again.status == 409, await again.text()
    assert (await again.json())["details"] == [{"field": "token", "message": "token_used"}]


async def test_a_forged_or_expired_token_is_refused(client):
    f = await live_visit(client)
    token = await issue(client, f)
    token_id, exp, sig = token.split(".")
    later = f"{token_id}.{int(exp) + 3600}.{sig}"  # a longer life, the same signature
    link = Link(f.visit_id, f.global_visit_id, None, SHOP)
    expired, _ = await client.app[LINKS].issue(link, now_ms() - 3_600_000)

    for bad, status, code in [(later, 403, "token_forged"), (expired, 410, "token_expired"),
                              ("x.1.y", 400, "invalid_input")]:  # fmt: skip
        r = await post(client, "link-redeem", {"token": bad}, PAY)
        assert r.status == status, await r.text()
        assert (await r.json())["error"] == code

    assert client.app[LINKS].refused_total == 3


async def test_a_token_is_refused_to_a_domain_not_linked_and_not_used_up(client):
    f = await live_visit(client)
    token = await issue(client, f)

    r = await post(client, "link-redeem", {"token": token}, EVIL)

    assert r.status == 403, await r.text()
    assert (await r.json())["details"] == [{"field": "Origin", "message": "not in linked_domains"}]
    r = await post(client, "link-redeem", {"token": token}, PAY)
    assert r.status == 200, await r.text()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"visitID": "nope", "globalVisitID": "A" * 32}, 400, "visitID"),
        ({"visitID": "A" * 32, "globalVisitID": "A" * 32}, 404, "visitID"),
        ({"visitID": "A" * 32}, 400, "globalVisitID"),
        ({"visitID": "A" * 32, "globalVisitID": "A" * 32, "key": "k"}, 400, "key"),
    ],
)
async def test_issuing_names_what_is_wrong(client, body, status, field):
    r = await post(client, "link-issue", body, SHOP)

    assert r.status == status, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == [field]


async def test_issuing_for_another_visitor_s_visit_is_refused(client):
    f = await live_visit(client)
    body = {"visitID": f.visit_id, "globalVisitID": new_id()}

    r = await post(client, "link-issue", body, SHOP)

    assert r.status == 400, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == ["globalVisitID"]


async def test_without_linked_domains_there_are_no_tokens(aiohttp_client: ClientFactory, settings):
    client = await aiohttp_client(create_app(settings.model_copy(update={"linked_domains": []})))
    f = await live_visit(client)

    r = await post(client, "link-issue", {"visitID": f.visit_id,
                                          "globalVisitID": f.global_visit_id}, SHOP)  # fmt: skip

    assert r.status == 404, await r.text()


async def test_erasure_voids_the_visitor_s_tokens(client):
    f = await live_visit(client)
    token = await issue(client, f)
    path = url(client, "visitor-erase", globalVisitID=f.global_visit_id)
    r = await client.delete(path, headers=AUTH)
    assert (await r.json())["live"]["linkTokens"] == 1

    r = await post(client, "link-redeem", {"token": token}, PAY)

    assert r.status == 403, await r.text()
    assert (await r.json())["error"] == "token_unknown"


# ---- chat sessions -------------------------------------------------------------------------


async def test_a_chat_session_saved_on_one_domain_is_read_on_the_other(client):
    gvid, key = new_id(), new_id()
    data = {"sessionId": "abc", "alias": "chat", "secureKey": "s3cr3t", "nested": {"n": 1}}
    saved = {"visitID": new_id(), "globalVisitID": gvid, "key": key, "data": data}

    r = await post(client, "chat-session-save", saved, SHOP)
    assert r.status == 200, await r.text()
    r = await post(client, "chat-session-load", {"globalVisitID": gvid, "key": key}, PAY)

    assert r.status == 200, await r.text()
    assert await r.json() == {"data": data}


async def test_a_chat_session_is_readable_only_with_its_key(client):
    gvid, key = new_id(), new_id()
    saved = {"visitID": new_id(), "globalVisitID": gvid, "key": key, "data": {"s": 1}}
    assert (await post(client, "chat-session-save", saved, SHOP)).status == 200

    read = await post(client, "chat-session-load", {"globalVisitID": gvid, "key": new_id()}, SHOP)
    write = await post(client, "chat-session-save", {**saved, "key": new_id()}, SHOP)

    for r in (read, write):
        assert r.status == 403, await r.text()
        assert [d["field"] for d in (await r.json())["details"]] == ["key"]
    r = await post(client, "chat-session-load", {"globalVisitID": gvid, "key": key}, SHOP)
    assert await r.json() == {"data": {"s": 1}}


async def test_a_chat_session_cleared_or_never_saved_reads_null(client):
    gvid, key = new_id(), new_id()
    saved = {"visitID": new_id(), "globalVisitID": gvid, "key": key, "data": {"s": 1}}
    await post(client, "chat-session-save", saved, SHOP)

    r = await post(client, "chat-session-save", {**saved, "data": None}, SHOP)

    assert r.status == 200, await r.text()
    r = await post(client, "chat-session-load", {"globalVisitID": gvid, "key": key}, SHOP)
    assert await r.json() == {"data": None}


@pytest.mark.parametrize(
    ("name", "body", "status", "field"),
    [
        ("chat-session-save", {"globalVisitID": "x", "key": "A" * 32, "visitID": "A" * 32,
                               "data": 1}, 400, "globalVisitID"),
        ("chat-session-save", {"globalVisitID": "A" * 32, "key": "A" * 32, "visitID": "A" * 32,
                               "data": "x" * 20_000}, 413, "data"),
        ("chat-session-load", {"globalVisitID": "A" * 32}, 400, "key"),
    ],
)  # fmt: skip
async def test_chat_session_input_is_checked(client, name, body, status, field):
    r = await post(client, name, body, SHOP)

    assert r.status == status, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == [field]


async def test_a_chat_session_is_for_allowed_sites_only(client):
    body = {"globalVisitID": new_id(), "key": new_id()}

    r = await post(client, "chat-session-load", body, "http://elsewhere.test")

    assert r.status == 403, await r.text()


async def test_erasure_deletes_the_chat_session(client):
    f = await live_visit(client)
    key = new_id()
    saved = {"visitID": f.visit_id, "globalVisitID": f.global_visit_id, "key": key, "data": {}}
    await post(client, "chat-session-save", saved, SHOP)

    r = await client.delete(url(client, "visitor-erase", globalVisitID=f.global_visit_id),
                            headers=AUTH)  # fmt: skip

    assert (await r.json())["deleted"]["chat_sessions"] == 1
    r = await post(client, "chat-session-load", {"globalVisitID": f.global_visit_id, "key": key},
                   SHOP)  # fmt: skip
    assert await r.json() == {"data": None}


# ---- the engine's first-party cookie -------------------------------------------------------


async def test_the_engine_keeps_the_visitor_id_in_its_own_httponly_cookie(
    aiohttp_client: ClientFactory, settings: Settings
):
    on = settings.model_copy(update={"first_party_cookie": True,
                                     "first_party_cookie_domain": "shop.test"})  # fmt: skip
    client = await aiohttp_client(create_app(on))
    mine = new_id()

    r = await post(client, "visitor-id", {"globalVisitID": mine}, SHOP)

    assert r.status == 200, await r.text()
    assert await r.json() == {"globalVisitID": mine, "returning": False, "cookie": "_eng_visitor"}
    cookie = r.headers["Set-Cookie"]
    for part in (f"_eng_visitor={mine}", "HttpOnly", "Max-Age=63072000", "Domain=shop.test",
                 "Path=/", "SameSite=Lax"):  # fmt: skip
        assert part in cookie, cookie
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    # The cookie wins over what a tracker proposes (it lost its own storage, or it lies).
    r = await client.post(url(client, "visitor-id"), json={"globalVisitID": new_id()},
                          headers={"Origin": SHOP, "Cookie": f"_eng_visitor={mine}"})  # fmt: skip
    assert await r.json() == {"globalVisitID": mine, "returning": True, "cookie": "_eng_visitor"}


async def test_the_engine_cookie_goes_when_consent_is_withdrawn(
    aiohttp_client: ClientFactory, settings: Settings
):
    on = settings.model_copy(update={"first_party_cookie": True,
                                     "first_party_cookie_domain": "shop.test"})  # fmt: skip
    client = await aiohttp_client(create_app(on))

    r = await post(client, "visitor-id-forget", {}, SHOP)

    assert r.status == 200, await r.text()
    cookie = r.headers["Set-Cookie"]
    for part in ('_eng_visitor=""', "Max-Age=0", "Domain=shop.test", "Path=/"):
        assert part in cookie, cookie


async def test_without_the_setting_there_is_no_engine_cookie(client):
    r = await post(client, "visitor-id", {}, SHOP)

    assert r.status == 404, await r.text()
    assert "Set-Cookie" not in r.headers


async def test_a_fresh_visitor_gets_a_new_id(aiohttp_client: ClientFactory, settings: Settings):
    client = await aiohttp_client(create_app(settings.model_copy(
        update={"first_party_cookie": True})))  # fmt: skip

    r = await post(client, "visitor-id", {}, SHOP)
    bad = await post(client, "visitor-id", {"globalVisitID": "x"}, SHOP)

    gvid = (await r.json())["globalVisitID"]
    assert len(gvid) == 32
    assert gvid == gvid.upper()
    assert "Domain" not in r.headers["Set-Cookie"]
    assert bad.status == 400
    assert [d["field"] for d in (await bad.json())["details"]] == ["globalVisitID"]


def test_linked_domains_are_plain_domains(tmp_path: Path):
    with pytest.raises(ValueError, match="is not a lower-case domain"):
        Settings(data_dir=tmp_path, linked_domains=["https://shop.com"])

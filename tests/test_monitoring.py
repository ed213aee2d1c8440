from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from engagement import constants as C

from .conftest import AUTH, SITE, Factory, post_events, url

Client = TestClient[Any, Any]


async def test_batch_is_accepted_and_duplicates_are_counted(client: Client, factory: Factory):
    events = factory.start()
    assert await post_events(client, events) == {"accepted": 2, "duplicates": 0}
    assert await post_events(client, events) == {"accepted": 0, "duplicates": 2}


async def test_answer_carries_cors_headers_for_the_site(client: Client, factory: Factory):
    r = await client.post(url(client, "events"), json={"events": factory.start()},
                          headers={"Origin": SITE})  # fmt: skip
    assert r.status == 200, await r.text()
    assert r.headers["Access-Control-Allow-Origin"] == SITE
    assert r.headers["Vary"] == "Origin"


async def test_beacon_text_plain_body_is_accepted(client: Client, factory: Factory):
    body = json.dumps({"events": factory.start()})
    r = await client.post(
        url(client, "events"),
        data=body,
        headers={"Origin": SITE, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert r.status == 200, await r.text()
    assert await r.json() == {"accepted": 2, "duplicates": 0}


async def test_bad_id_names_the_field(client: Client, factory: Factory):
    event = factory.event("AddToCart", visitID="not-an-id")
    r = await client.post(url(client, "events"), json={"events": [event]}, headers={"Origin": SITE})
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "invalid_input"
    assert body["details"][0]["field"] == "events.0.visitID"
    assert "events.0.visitID" in body["message"]
    assert r.headers["Access-Control-Allow-Origin"] == SITE  # so the tracker can read why


async def test_missing_field_is_named(client: Client, factory: Factory):
    event = factory.event("AddToCart")
    del event["pageID"]
    r = await client.post(url(client, "events"), json={"events": [event]}, headers={"Origin": SITE})
    assert r.status == 400
    assert (await r.json())["details"] == [
        {"field": "events.0.pageID", "message": "Field required", "type": "missing"}
    ]


async def test_unknown_system_event_is_stored_as_sent(client: Client, factory: Factory):
    """Older GWE sites send SYSTEM events this engine has no handler for: kept, not a 400."""
    legacy = factory.event("ChatStarted", {"source": "gwe-8.1"}, eventType="SYSTEM")
    events = [*factory.start(), legacy]

    assert await post_events(client, events) == {"accepted": 3, "duplicates": 0}

    r = await client.get(client.app.router["visit"].url_for(visitID=factory.visit_id),
                         headers=AUTH)  # fmt: skip
    assert r.status == 200, await r.text()
    kept = [e for e in (await r.json())["events"] if e["eventName"] == "ChatStarted"]
    assert [(e["eventType"], e["eventID"], e["data"]) for e in kept] == [
        ("SYSTEM", legacy["eventID"], {"source": "gwe-8.1"})
    ]


async def test_unknown_system_event_is_bounded_like_others(client: Client, factory: Factory):
    too_long = factory.event("X" * 101, eventType="SYSTEM")
    too_big = factory.event("Legacy", {"s": "x" * C.MAX_EVENT_DATA_BYTES}, eventType="SYSTEM")
    for event, field in ((too_long, "events.0.eventName"), (too_big, "events.0.data")):
        r = await client.post(
            url(client, "events"), json={"events": [event]}, headers={"Origin": SITE}
        )
        assert r.status == 400, await r.text()
        assert (await r.json())["details"][0]["field"] == field


async def test_empty_and_oversized_batches_are_refused(client: Client, factory: Factory):
    r = await client.post(url(client, "events"), json={"events": []}, headers={"Origin": SITE})
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "events"
    many = [factory.event("Tick") for _ in range(101)]
    r = await client.post(url(client, "events"), json={"events": many}, headers={"Origin": SITE})
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "events"


async def test_invalid_json_is_a_400(client: Client):
    r = await client.post(
        url(client, "events"),
        data=b'{"events": [',
        headers={"Origin": SITE, "Content-Type": "application/json"},
    )
    assert r.status == 400
    body = await r.json()
    assert body["error"] == "invalid_input"
    assert body["details"][0]["type"] == "json_invalid"


async def test_oversized_body_is_a_413(client: Client, factory: Factory):
    event = factory.event("Big", {"blob": "x" * 300_000})
    r = await client.post(url(client, "events"), json={"events": [event]}, headers={"Origin": SITE})
    assert r.status == 413
    body = await r.json()
    assert body["error"] == "payload_too_large"
    assert "262144 bytes" in body["message"]


async def test_wrong_content_type_is_a_415(client: Client):
    r = await client.post(
        url(client, "events"), data=b"events=1",
        headers={"Origin": SITE, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert r.status == 415
    assert (await r.json())["details"][0]["field"] == "Content-Type"


async def test_foreign_origin_is_forbidden(client: Client, factory: Factory):
    r = await client.post(
        url(client, "events"), json={"events": factory.start()},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert r.status == 403
    body = await r.json()
    assert body["error"] == "forbidden"
    assert "'https://evil.example' is not an allowed site" in body["message"]
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_missing_origin_is_forbidden(client: Client, factory: Factory):
    r = await client.post(url(client, "events"), json={"events": factory.start()})
    assert r.status == 403
    assert "Origin header is missing" in (await r.json())["message"]


async def test_preflight_answers_allowed_origins_only(client: Client):
    r = await client.options(
        url(client, "events"),
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = await client.options(url(client, "events"), headers={"Origin": "http://evil.example"})
    assert r.status == 403


async def test_unknown_path_and_method_are_json_errors(client: Client):
    r = await client.get("/nope")
    assert r.status == 404
    assert (await r.json())["error"] == "not_found"
    r = await client.get(url(client, "events"))
    assert r.status == 405
    assert (await r.json())["error"] == "method_not_allowed"


async def test_tracker_config_carries_the_engines_bounds(client: Client):
    """The tracker cuts URLs, titles and language codes, and sizes its batches, by the numbers
    the engine validates with, passed in its config rather than repeated in the script."""
    r = await client.get(client.app.router["tracker"].url_for())
    assert r.status == 200, await r.text()
    text = await r.text()
    for key, value in (("batchEvents", C.TRACKER_BATCH_EVENTS), ("maxUrlChars", C.MAX_URL_CHARS),
                       ("maxTitleChars", C.MAX_TITLE_CHARS),
                       ("maxLanguageChars", C.MAX_LANGUAGE_CODE_CHARS),
                       ("maxDataBytes", C.MAX_EVENT_DATA_BYTES)):  # fmt: skip
        assert f'"{key}":{value}' in text, key
    assert C.TRACKER_BATCH_EVENTS <= C.MAX_EVENTS_PER_BATCH

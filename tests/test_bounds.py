"""Every value a client sends has a bound, checked at the edge: a 400 naming the field, and
the engine goes on writing and reading everyone else's visits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from engagement import constants as C
from engagement.console.session import SESSION_COOKIE
from engagement.console.templating import FLASH_COOKIE
from engagement.monitoring.bounds import _size_bound, _surely_within, check_data, check_exactly
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events
from .test_console import console_app

Client = TestClient[Any, Any]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    return await aiohttp_client(console_app(settings))


def events_url(client: Client) -> str:
    return str(client.app.router["events"].url_for())


async def refused(client: Client, event: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(events_url(client), json={"events": [event]}, headers={"Origin": SITE})
    assert r.status == 400, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def read_visit(client: Client, visit_id: str) -> dict[str, Any]:
    url = client.app.router["visit"].url_for(visitID=visit_id)
    r = await client.get(url, headers=AUTH)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


HOSTILE = [
    ({"timestamp": 2**63}, "events.0.timestamp", "less than or equal to 253402300799999"),
    ({"timestamp": -1}, "events.0.timestamp", "greater than or equal to 0"),
    ({"url": "x" * 5000}, "events.0.url", "at most 4096 characters"),
    ({"category": "c" * 1001}, "events.0.category", "at most 1000 characters"),
    ({"data": {"blob": "x" * 20_000}}, "events.0.data", "data is 20011 bytes as JSON; at most"),
    ({"data": {"n": 2**63}}, "events.0.data.n", "integers are at most 9007199254740991"),
    ({"data": {"a": {"b": [0, 1e308 * 10]}}}, "events.0.data.a.b.1", "numbers must be finite"),
    ({"data": {"a": deep(10)}}, "events.0.data.a.0.0.0.0.0.0.0", "nested deeper than 8 levels"),
]


@pytest.mark.parametrize(("fields", "field", "message"), HOSTILE)
async def test_business_event_bounds(
    client: Client, factory: Factory, fields: dict[str, Any], field: str, message: str
):
    body = await refused(client, factory.event("AddToCart", **fields))

    assert body["error"] == "invalid_input"
    assert [d["field"] for d in body["details"]] == [field]
    assert message in body["message"]


SYSTEM_HOSTILE = [
    ("VisitStarted", {"timezoneOffset": 2**63}, "events.0.data.timezoneOffset"),
    ("VisitStarted", {"timezoneOffset": 1441}, "events.0.data.timezoneOffset"),
    ("VisitStarted", {"userAgent": "u" * 1001}, "events.0.data.userAgent"),
    ("VisitStarted", {"userAgent": {"a": 1}}, "events.0.data.userAgent"),
    ("PageEntered", {"title": "t" * 1001}, "events.0.data.title"),
    ("PageEntered", {"timezoneOffset": -1441}, "events.0.data.timezoneOffset"),
    ("PageEntered", {"referrer": "r" * 4097}, "events.0.data.referrer"),
    ("PageEntered", {"utm": {"source": ["x"]}}, "events.0.data.utm.source"),
    ("FocusChanged", {"focused": "maybe"}, "events.0.data.focused"),
]


@pytest.mark.parametrize(("name", "data", "field"), SYSTEM_HOSTILE)
async def test_system_event_data_bounds(
    client: Client, factory: Factory, name: str, data: dict[str, Any], field: str
):
    body = await refused(client, factory.event(name, data))

    assert [d["field"] for d in body["details"]] == [field]


async def test_values_at_the_bounds_are_written_and_read_back(client: Client, factory: Factory):
    events = factory.start(title="t" * C.MAX_TITLE_CHARS)
    events[1]["data"]["timezoneOffset"] = C.MAX_TIMEZONE_OFFSET_MIN
    events[0]["timestamp"] = C.MAX_TIMESTAMP_MS
    data = {"n": C.MAX_SAFE_INTEGER, "m": -C.MAX_SAFE_INTEGER, "a": deep(7), "f": 1.5e300}
    events.append(factory.event("AddToCart", data))

    assert await post_events(client, events) == {"accepted": 3, "duplicates": 0}

    visit = await read_visit(client, factory.visit_id)
    assert visit["timezoneOffset"] == C.MAX_TIMEZONE_OFFSET_MIN
    assert visit["pages"][0]["title"] == "t" * C.MAX_TITLE_CHARS
    assert visit["events"][0]["timestamp"] == C.MAX_TIMESTAMP_MS
    assert visit["events"][2]["data"] == data


async def test_a_refused_event_leaves_other_visits_written(client: Client, factory: Factory):
    await refused(client, factory.event("VisitStarted", {"timezoneOffset": 2**63}))
    other = Factory()

    await post_events(client, other.start())

    visit = await read_visit(client, other.visit_id)
    assert [e["eventName"] for e in visit["events"]] == ["VisitStarted", "PageEntered"]


# -- headers and cookies --


def stream_url(client: Client, factory: Factory) -> str:
    url = client.app.router["stream"].url_for()
    return str(url.with_query(visitID=factory.visit_id, pageID=factory.page_id))


@pytest.mark.parametrize("last", ["9" * 5000, "²", "١٢", "-1", "1.5", "12345678901234567"])
async def test_bad_last_event_id_is_a_400_naming_it(client: Client, factory: Factory, last: str):
    headers = {"Origin": SITE, "Last-Event-ID": last}
    r = await client.get(stream_url(client, factory), headers=headers)

    assert r.status == 400, await r.text()
    body = await r.json()
    assert [d["field"] for d in body["details"]] == ["Last-Event-ID"]


async def test_huge_since_is_a_400_naming_it(client: Client, factory: Factory):
    url = (
        client.app.router["stream"]
        .url_for()
        .with_query(visitID=factory.visit_id, pageID=factory.page_id, since="9" * 5000)
    )
    r = await client.get(url, headers={"Origin": SITE})

    assert r.status == 400, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == ["since"]


@pytest.mark.parametrize("token", ["9" * 5000 + ".x", "².x", "١٢.x", ".", "99999999999999.abc"])
async def test_forged_console_cookie_asks_to_sign_in(client: Client, token: str):
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    page = client.app.router["console-visitors"].url_for()
    data = client.app.router["console-visitors-json"].url_for()

    r = await client.get(page, allow_redirects=False)
    assert r.status == 303, await r.text()
    r = await client.get(data)
    assert r.status == 401, await r.text()


def flash(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "raw", [flash(5), flash(None), flash(["ok"]), "²", "!!!", flash({"a": 1, "b": 2})]
)
async def test_forged_flash_cookie_is_ignored(client: Client, raw: str):
    client.session.cookie_jar.update_cookies({FLASH_COOKIE: raw})
    login = client.app.router["console-login"].url_for()

    r = await client.get(login)

    assert r.status == 200, await r.text()


async def test_deeply_nested_flash_cookie_is_ignored(client: Client):
    raw = base64.urlsafe_b64encode(b"[" * 5000).decode()
    client.session.cookie_jar.update_cookies({FLASH_COOKIE: raw})

    r = await client.get(client.app.router["console-login"].url_for())

    assert r.status == 200, await r.text()


async def test_a_broken_form_is_a_400_naming_the_body(client: Client):
    login = client.app.router["console-login-post"].url_for()
    headers = {"Content-Type": "multipart/form-data; boundary=zz"}

    r = await client.post(login, data=b"no boundary here", headers=headers)

    assert r.status == 400, await r.text()
    body = await r.json()
    assert body["error"] == "invalid_input"
    assert body["details"] == [{"field": "body", "message": "not a readable form"}]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats()
    | st.text(max_size=40)
    | st.text(max_size=4000),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(database=None, max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_the_quick_check_passes_only_what_the_exact_one_does(data: dict[str, Any]) -> None:
    """What `check_data` lets through without writing the JSON, the long way accepts too,
    and its size bound is never under the real size."""
    if not _surely_within(data):
        return
    assert check_exactly(data) is data
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    assert size <= _size_bound(data, 1) <= C.MAX_EVENT_DATA_BYTES


@pytest.mark.parametrize(
    "data",
    [
        {"a": deep(7)},  # eight levels: the cap
        {"event": "Bench", "data": {"sent": C.MAX_SAFE_INTEGER, "x": [1.5, None, True]}},
        {"k": "\u0000" * 2000},  # every character its longest escape
    ],
)
def test_nested_data_within_every_bound_takes_the_quick_path(data: dict[str, Any]) -> None:
    assert _surely_within(data)
    assert check_data(data) is data


@pytest.mark.parametrize(
    "data",
    [
        {"a": deep(8)},  # nine levels
        {"a": {"b": [C.MAX_SAFE_INTEGER + 1]}},
        {"a": [{"b": float("inf")}]},
        {"a": ["x" * 3000] * 2},  # may be over 16 KB as JSON: measured
        {1: "not a string key"},
    ],
)
def test_what_the_exact_check_must_see_is_not_passed_quickly(data: dict[str, Any]) -> None:
    assert not _surely_within(data)

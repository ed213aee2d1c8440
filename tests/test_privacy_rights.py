"""A visitor's rights: export and erasure of everything the engine holds, by globalVisitID and
by identity, for admins only, audited; the allow-list of UserInfo/SignIn fields."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, HUB, INGESTOR, LIFECYCLE, OUTBOX, REGISTRY
from engagement.api.throttling import GUARD
from engagement.api.visitors import RIGHTS
from engagement.app import create_app
from engagement.attempts import Origin
from engagement.experiments.model import Conversion
from engagement.settings import ApiKey, Settings

from .conftest import API_KEY, AUTH, SITE, ClientFactory, Factory, new_id, post_events, url

AGENT_KEY = "agent-key-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        strategies_dir=tmp_path / "strategies",
        api_keys=[API_KEY, ApiKey(key=AGENT_KEY, role="agent", name="agent")],
        allowed_origins=[SITE],
        history_flush_interval_s=0.05,
    )


def every_row(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store."""
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


def rows_naming(db_path: Path, *needles: str, but: tuple[str, ...] = ()) -> list[str]:
    """``table: row`` for each row, in any table but ``but``, holding one of ``needles``."""
    found = []
    for table, rows in every_row(db_path).items():
        for row in rows:
            text = repr(row)
            if table not in but and any(n in text for n in needles):
                found.append(f"{table}: {text}")
    return found


async def full_visitor(client: TestClient[Any, Any], factory: Factory) -> None:
    """A visitor who left something in every store: pages, events, an identity, an attempt
    (offered: a push message), a conversion, a callback request and a limit's count."""
    app = client.app
    await post_events(client, factory.start())
    await post_events(client, [
        factory.event("UserInfo", {"email": "ada@example.com", "firstName": "Ada"}),
        factory.event("SignIn", {"customerID": "C-1", "email": "ada@example.com"}),
    ])  # fmt: skip
    visit = app[REGISTRY].get(factory.visit_id)
    assert visit is not None
    lifecycle = app[LIFECYCLE]
    attempt = lifecycle.add(visit, lifecycle.new_attempt(
        visit, "agent", Origin.AGENT, "chat.html", "chat", {}, 30))  # fmt: skip
    app[HISTORY].record_conversion(Conversion(
        attempt.attempt_id, new_id(), "agent", "", visit.visit_id, visit.global_visit_id,
        "OrderPlaced", visit.last_seen_at, 10.0))  # fmt: skip
    await app[OUTBOX].enqueue(attempt.attempt_id, visit.visit_id, "callback",
                              {"_customer_number": "+33123456789"})  # fmt: skip
    await app[GUARD].admit({"callback_visitor": visit.global_visit_id,
                            "callback_number": "+33123456789"})  # fmt: skip
    await app[HISTORY].flush()


async def test_export_holds_everything_about_the_visitor(client, factory):
    await full_visitor(client, factory)
    gvid = factory.global_visit_id

    r = await client.get(url(client, "visitor-export", globalVisitID=gvid), headers=AUTH)

    assert r.status == 200, await r.text()
    export = await r.json()
    assert export["subject"] == {"globalVisitIDs": [gvid], "visitIDs": [factory.visit_id],
                                 "identityIds": ["ada@example.com"]}  # fmt: skip
    stored = export["stored"]
    assert {t: len(rows) for t, rows in stored.items()} == {
        "visits": 1, "pages": 1, "events": 4, "attempts": 1, "conversions": 1,
        "identity_visits": 1, "push_messages": 1, "callbacks": 1, "chat_sessions": 0,
        "identities": 1,
    }  # fmt: skip
    assert stored["visits"][0]["user_info"] == {"email": "ada@example.com", "firstName": "Ada",
                                                "customerID": "C-1"}  # fmt: skip
    assert stored["callbacks"][0]["form"] == {"_customer_number": "+33123456789"}
    live = export["live"]
    assert [v["visitID"] for v in live["visits"]] == [factory.visit_id]
    assert [a["state"] for a in live["attempts"]] == ["offered"]
    assert [m["channel"] for m in live["pushBuffers"][factory.visit_id]] == ["gpe.invite"]
    assert sorted(live["counters"]) == ["callback_number:+33123456789", f"callback_visitor:{gvid}"]


async def test_erasure_leaves_no_row_and_no_live_state(client, factory, settings):
    await full_visitor(client, factory)
    other = Factory()
    await post_events(client, other.start())
    app, gvid, visit_id = client.app, factory.global_visit_id, factory.visit_id
    stream = app[HUB].connect(visit_id, factory.page_id, 0, 0)

    r = await client.delete(url(client, "visitor-erase", globalVisitID=gvid), headers=AUTH)

    assert r.status == 200, await r.text()
    erased = await r.json()
    assert erased["deleted"] == {
        "visits": 1, "pages": 1, "events": 4, "attempts": 1, "conversions": 1,
        "identity_visits": 1, "push_messages": 2, "callbacks": 1, "chat_sessions": 0,
        "identities": 1,
    }  # fmt: skip
    assert erased["live"] == {"visits": 1, "attempts": 1, "streams": 1, "counters": 2,
                              "linkTokens": 0}  # fmt: skip
    assert erased["completedAt"] > 0
    await app[HISTORY].flush()
    needles = (gvid, visit_id, "ada@example.com", "C-1", "+33123456789")
    # The audit log keeps who erased which globalVisitID (a random ID; nothing else is left).
    assert rows_naming(settings.db_path, *needles, but=("audit",)) == []
    assert app[REGISTRY].get(visit_id) is None
    assert app[LIFECYCLE].by_id == {}
    assert not app[HUB].has_stream(visit_id, factory.page_id)
    assert await stream.get(0) is not None  # the closing frames: the page's stream ended
    assert await app[GUARD].limiter.counted([f"callback_visitor:{gvid}"]) == []  # type: ignore[attr-defined]
    # The other visitor is untouched.
    assert rows_naming(settings.db_path, other.visit_id) != []


async def test_events_of_an_erased_visit_do_not_bring_it_back(client, factory, settings):
    await post_events(client, factory.start())
    gvid = factory.global_visit_id
    r = await client.delete(url(client, "visitor-erase", globalVisitID=gvid), headers=AUTH)
    assert r.status == 200, await r.text()

    answer = await post_events(client, [factory.event("AddToCart", {"sku": "X"})])

    assert answer == {"accepted": 0, "duplicates": 0}
    assert client.app[INGESTOR].erased_dropped_total == 1
    await client.app[HISTORY].flush()
    assert rows_naming(settings.db_path, gvid, factory.visit_id, but=("audit",)) == []


async def test_an_erased_visit_is_not_written_back_when_the_engine_stops(
    aiohttp_client: ClientFactory, settings: Settings
):
    client = await aiohttp_client(create_app(settings))
    factory = Factory()
    await post_events(client, factory.start())
    await client.app[HISTORY].flush()
    # A later event moves last_seen_at only: the store holds that row back for its final write.
    await post_events(client, [factory.event("AddToCart", {"sku": "X"})])
    await client.app[HISTORY].flush()
    r = await client.delete(
        url(client, "visitor-erase", globalVisitID=factory.global_visit_id), headers=AUTH
    )
    assert r.status == 200, await r.text()

    await client.close()  # the engine stops: the store writes what it held back

    assert rows_naming(settings.db_path, factory.visit_id, factory.global_visit_id,
                       but=("audit",)) == []  # fmt: skip


async def test_a_node_told_of_an_erasure_deletes_the_identity_its_live_visit_named(
    client: TestClient[Any, Any], factory: Factory, settings: Settings
):
    """Another node erased the visit: it read the identity links before this node had written
    them, and deleted them after. This node, told, still knows the identity from its live
    visit: no visit links to it any more, so it goes."""
    await post_events(client, factory.start())
    await post_events(client, [factory.event("UserInfo", {"email": "ada@example.com"})])
    history = client.app[HISTORY]
    await history.flush()
    await history.delete_where({"identity_visits": ("visit_id", [factory.visit_id])})
    assert rows_naming(settings.db_path, "ada@example.com") != []  # the identity row stayed

    await client.app[RIGHTS].told({"globalVisitIDs": [factory.global_visit_id],
                                   "visitIDs": [factory.visit_id], "identityIds": []})  # fmt: skip

    await history.flush()
    assert rows_naming(settings.db_path, "ada@example.com", factory.visit_id,
                       but=("audit",)) == []  # fmt: skip


async def test_a_node_told_of_an_erasure_also_forgets_a_visit_of_the_browser_only_it_knew(
    client: TestClient[Any, Any], factory: Factory, settings: Settings
):
    """The erasing node found the browser's visits in the store; one started here moments
    before had no row yet. This node, told the globalVisitID, finds it in its memory."""
    await post_events(client, factory.start())

    await client.app[RIGHTS].told({"globalVisitIDs": [factory.global_visit_id],
                                   "visitIDs": [], "identityIds": []})  # fmt: skip

    assert client.app[REGISTRY].get(factory.visit_id) is None
    await client.app[HISTORY].flush()
    assert rows_naming(settings.db_path, factory.visit_id, but=("audit",)) == []


async def test_erasure_by_identity_reaches_every_browser_it_used(client, settings):
    laptop, phone, stranger = Factory(), Factory(), Factory()
    for browser in (laptop, phone):
        await post_events(client, browser.start())
        await post_events(client, [browser.event("SignIn", {"email": "ada@example.com"})])
    await post_events(client, stranger.start())
    before = Factory()  # the laptop's anonymous visit before: same browser, erased too
    before.global_visit_id = laptop.global_visit_id
    await post_events(client, before.start())
    query = {"identityId": "ada@example.com"}

    r = await client.get(url(client, "identity-export", query), headers=AUTH)
    assert r.status == 200, await r.text()
    subject = (await r.json())["subject"]
    assert sorted(subject["visitIDs"]) == sorted([laptop.visit_id, phone.visit_id,
                                                  before.visit_id])  # fmt: skip

    r = await client.delete(url(client, "identity-erase", query), headers=AUTH)

    assert r.status == 200, await r.text()
    assert (await r.json())["deleted"]["identities"] == 1
    await client.app[HISTORY].flush()
    ids = (laptop.visit_id, phone.visit_id, before.visit_id, laptop.global_visit_id,
           phone.global_visit_id, "ada@example.com")  # fmt: skip
    assert rows_naming(settings.db_path, *ids, but=("audit",)) == []
    assert rows_naming(settings.db_path, stranger.visit_id) != []
    r = await client.get(url(client, "audit"), headers=AUTH)
    entries = (await r.json())["entries"]
    assert [(e["action"], e["target"], e["status"]) for e in entries[:2]] == [
        ("identity-erase", {}, 200), ("identity-export", {}, 200),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "parts", "query", "status", "field"),
    [
        ("visitor-export", {"globalVisitID": "not-an-id"}, None, 400, "globalVisitID"),
        ("visitor-erase", {"globalVisitID": "a" * 32}, None, 400, "globalVisitID"),
        ("visitor-export", {"globalVisitID": "A" * 32}, None, 404, "globalVisitID"),
        ("visitor-erase", {"globalVisitID": "A" * 32}, None, 404, "globalVisitID"),
        ("identity-export", {}, {}, 400, "identityId"),
        ("identity-erase", {}, {"identityId": "x" * 201}, 400, "identityId"),
        ("identity-export", {}, {"identityId": "nobody@example.com"}, 404, "identityId"),
        ("identity-erase", {}, {"identityId": "a", "extra": "b"}, 400, "extra"),
    ],
)
async def test_bad_or_unknown_subjects_are_named(client, name, parts, query, status, field):
    method = "DELETE" if name.endswith("erase") else "GET"

    r = await client.request(method, url(client, name, query, **parts), headers=AUTH)

    assert r.status == status, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == [field]


@pytest.mark.parametrize("name", ["visitor-export", "visitor-erase"])
async def test_only_admins_see_or_erase_a_visitor(client, factory, name):
    await post_events(client, factory.start())
    method = "DELETE" if name.endswith("erase") else "GET"
    path = url(client, name, globalVisitID=factory.global_visit_id)

    r = await client.request(method, path, headers={"X-API-Key": AGENT_KEY})

    assert r.status == 403, await r.text()
    assert client.app[REGISTRY].get(factory.visit_id) is not None


async def test_user_info_keeps_only_the_allowed_fields(aiohttp_client: ClientFactory, settings):
    allowed = settings.model_copy(update={"user_info_fields": ["email", "customerID"]})
    client = await aiohttp_client(create_app(allowed))
    factory = Factory()
    await post_events(client, factory.start())
    await post_events(client, [
        factory.event("UserInfo", {"email": "ada@example.com", "phone": "+331", "age": 36}),
        factory.event("SignIn", {"customerID": "C-1", "address": "1 rue X"}),
        factory.event("AddToCart", {"phone": "business data is not personal data here"}),
    ])  # fmt: skip

    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)

    visit = await r.json()
    assert visit["userInfo"] == {"email": "ada@example.com", "customerID": "C-1"}
    assert [e["data"] for e in visit["events"][2:]] == [
        {"email": "ada@example.com"}, {"customerID": "C-1"},
        {"phone": "business data is not personal data here"},
    ]  # fmt: skip
    assert client.app[INGESTOR].fields is not None
    assert client.app[INGESTOR].fields.dropped_total == 3


def test_an_attached_field_the_allow_list_drops_is_a_settings_error(tmp_path):
    with pytest.raises(ValueError, match=r"user_data.attach names UserInfo.phone"):
        Settings(data_dir=tmp_path, user_info_fields=["email"],
                 user_data={"attach": ["UserInfo.phone"]})  # fmt: skip


async def every_postgres_row(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {
            t["table_name"]: [
                tuple(r) for r in await conn.fetch(f'SELECT * FROM "{t["table_name"]}"')
            ]
            for t in tables
        }
    finally:
        await conn.close()


async def postgres_rows_naming(database_url: str, *needles: str) -> list[str]:
    """Every row outside the audit log (which keeps the globalVisitID on purpose) whose
    values name one of ``needles``."""
    rows = await every_postgres_row(database_url)
    return [f"{t}: {row!r}" for t, found in rows.items() if t != "audit" for row in found
            if any(n in repr(row) for n in needles)]  # fmt: skip


async def test_erasure_leaves_no_row_on_postgresql(
    aiohttp_client: ClientFactory, settings: Settings, database_url: str
):
    client = await aiohttp_client(create_app(settings.model_copy(
        update={"database_url": database_url})))  # fmt: skip
    factory = Factory()
    await full_visitor(client, factory)
    needles = (factory.global_visit_id, factory.visit_id, "ada@example.com", "+33123456789")
    before = await every_postgres_row(database_url)
    holding = {t for t, rows in before.items() if any(n in repr(r) for r in rows for n in needles)}
    assert holding >= {
        "visits", "pages", "events", "attempts", "conversions", "identities", "identity_visits",
        "push_messages", "callbacks",
    }  # fmt: skip

    r = await client.delete(
        url(client, "visitor-erase", globalVisitID=factory.global_visit_id), headers=AUTH
    )

    assert r.status == 200, await r.text()
    await client.app[HISTORY].flush()
    after = await every_postgres_row(database_url)
    left = [f"{t}: {r!r}" for t, rows in after.items() if t != "audit" for r in rows
            if any(n in repr(r) for n in needles)]  # fmt: skip
    assert left == []

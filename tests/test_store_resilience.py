"""One row the store cannot hold never blocks the others; one unreadable row never fails a read."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, REGISTRY
from engagement.settings import Settings
from engagement.visits import store

from .conftest import AUTH, Factory, post_events

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rows are written when a test flushes, not behind its back."""
    return settings.model_copy(update={"history_flush_interval_s": 3600})


async def read_visit(client: Client, visit_id: str) -> dict[str, Any]:
    r = await client.get(client.app.router["visit"].url_for(visitID=visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def metric_lines(client: Client, prefix: str) -> list[str]:
    r = await client.get(client.app.router["metrics"].url_for())
    assert r.status == 200, await r.text()
    return [line for line in (await r.text()).splitlines() if line.startswith(prefix)]


async def test_a_row_the_store_cannot_hold_is_set_aside_alone(client: Client, factory: Factory):
    await post_events(client, factory.start())
    history = client.app[HISTORY]
    await history.flush()
    # Values the edge refuses, put into live state behind its back: past SQLite's int64,
    # and an integer json cannot write.
    poisoned = client.app[REGISTRY].get(factory.visit_id)
    assert poisoned is not None
    poisoned.timezone_offset = 2**63
    poisoned.changed = True
    bad_event = factory.event("AddToCart", {"n": 1})
    good_event = factory.event("AddToCart", {"n": 2})
    await post_events(client, [bad_event, good_event])
    stored = poisoned.events_by_name["AddToCart"][0]
    stored.data = {"n": 10**5000}
    other = Factory()

    await post_events(client, other.start())
    await history.flush()

    assert history.set_aside == {
        "visits": 1,
        "pages": 0,
        "events": 1,
        "attempts": 0,
        "conversions": 0,
    }
    visit = await read_visit(client, other.visit_id)
    assert [e["eventName"] for e in visit["events"]] == ["VisitStarted", "PageEntered"]
    mine = await read_visit(client, factory.visit_id)  # its earlier row, and the good event
    assert mine["timezoneOffset"] == -60
    assert [e["data"] for e in mine["events"][2:]] == [{"n": 2}]
    assert await metric_lines(client, "engagement_history_rows_set_aside_total") == [
        'engagement_history_rows_set_aside_total{table="visits"} 1.0',
        'engagement_history_rows_set_aside_total{table="pages"} 0.0',
        'engagement_history_rows_set_aside_total{table="events"} 1.0',
        'engagement_history_rows_set_aside_total{table="attempts"} 0.0',
        'engagement_history_rows_set_aside_total{table="conversions"} 0.0',
    ]
    later = Factory()  # and the writes after it go on
    await post_events(client, later.start())
    visit = await read_visit(client, later.visit_id)
    assert [e["eventName"] for e in visit["events"]] == ["VisitStarted", "PageEntered"]


async def test_an_unreadable_row_is_left_out_of_reads(client: Client, factory: Factory):
    await post_events(client, factory.start())
    await post_events(client, [factory.event("AddToCart", {"sku": "WH15"})])
    history = client.app[HISTORY]
    await history.flush()
    await history.db.execute(
        "UPDATE events SET data = '{not json' WHERE event_name = 'PageEntered'"
    )

    visit = await read_visit(client, factory.visit_id)

    assert [e["eventName"] for e in visit["events"]] == ["VisitStarted", "AddToCart"]
    assert history.unreadable["events"] == 1
    assert await metric_lines(
        client, 'engagement_history_rows_unreadable_total{table="events"}'
    ) == ['engagement_history_rows_unreadable_total{table="events"} 1.0']


async def test_rows_being_written_still_count_as_not_written(
    client: Client, factory: Factory, monkeypatch: pytest.MonkeyPatch
):
    """/ready's history queue and the queue metric count the rows of the write under way: a
    flush takes its rows before it awaits the database, and they are not written until it
    commits (read in between, the queue looked empty while nothing was written)."""
    history = client.app[HISTORY]
    await history.flush()
    await post_events(client, factory.start())
    queued = history.pending
    assert queued > 0
    release = asyncio.Event()
    opened = history.db.transaction

    def held() -> Any:
        @contextlib.asynccontextmanager
        async def transaction() -> Any:
            await release.wait()
            async with opened() as tx:
                yield tx

        return transaction()

    monkeypatch.setattr(history.db, "transaction", held)
    writing = asyncio.create_task(history.flush())
    try:
        await asyncio.sleep(0.05)  # the flush has taken its rows and waits for the database
        assert not writing.done()
        assert history.pending == queued
    finally:
        release.set()
        await writing
    assert history.pending == 0


async def test_a_flush_lets_the_loop_run_while_it_builds_event_rows(
    client: Client, factory: Factory, monkeypatch: pytest.MonkeyPatch
):
    """Event rows are built a slice at a time with the loop let run in between (a flush of
    thousands of events built whole held the loop for milliseconds); every row is written,
    in the order the events came."""
    monkeypatch.setattr(store, "EVENT_ROWS_PER_SLICE", 2)
    history = client.app[HISTORY]
    await history.flush()
    await post_events(client, factory.start())
    await post_events(client, [factory.event("AddToCart", {"n": n}) for n in range(5)])
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    opened = history.db.transaction
    turns_when_writing: list[int] = []

    def counted() -> Any:
        turns_when_writing.append(turns)
        return opened()

    monkeypatch.setattr(history.db, "transaction", counted)
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        before = turns
        await history.flush()
    finally:
        ticking.cancel()
    # 7 events in slices of 2: the loop ran between the 4 slices, before the write began.
    assert turns_when_writing[0] - before >= 3
    visit = await read_visit(client, factory.visit_id)
    assert [e["data"].get("n") for e in visit["events"][2:]] == [0, 1, 2, 3, 4]

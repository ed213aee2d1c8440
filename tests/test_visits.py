from __future__ import annotations

import asyncio
from pathlib import Path

from engagement.scheduler import close_idle_visits, purge_history
from engagement.visits.model import Event, EventType, Identity, Visit
from engagement.visits.registry import VisitRegistry
from engagement.visits.store import SQLiteHistory

from .conftest import new_id

VISIT, GVID, PAGE1, PAGE2 = new_id(), new_id(), new_id(), new_id()


def ev(name: str, page: str, t: int, data: dict[str, object] | None = None, system: bool = True,
       visit: str = VISIT) -> Event:  # fmt: skip
    return Event(
        event_id=new_id(), event_type=EventType.SYSTEM if system else EventType.BUSINESS,
        event_name=name, visit_id=visit, page_id=page, global_visit_id=GVID, timestamp=t,
        server_time=t, url=f"https://shop.example/{page[:4]}", category="", language_code="fr",
        data=data or {},
    )  # fmt: skip


class ListSink:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, int]] = []
        self.closed: list[str] = []

    def record(self, visit: Visit, events: list[Event]) -> None:
        self.recorded.append((visit.visit_id, len(events)))

    def record_closed(self, visit: Visit) -> None:
        self.closed.append(visit.visit_id)


def test_pages_focus_and_times():
    registry = VisitRegistry(ListSink(), visit_timeout_s=60)
    registry.ingest([
        ev("VisitStarted", PAGE1, 1000, {"returning": True, "timezoneOffset": 120}),
        ev("PageEntered", PAGE1, 1000, {"title": "Home", "focused": True,
                                        "utm": {"source": "mail"}}),
        ev("FocusChanged", PAGE1, 4000, {"focused": False}),
        ev("FocusChanged", PAGE1, 6000, {"focused": True}),
        ev("PageEntered", PAGE2, 9000, {"title": "Pricing", "focused": True}),
    ])  # fmt: skip
    visit = registry.get(VISIT)
    assert visit is not None
    first, second = visit.pages.values()
    assert (first.title, first.utm, first.exited_at, first.focused) == (
        "Home", {"source": "mail"}, 9000, False)  # fmt: skip
    assert first.focused_ms == 3000 + 3000
    assert visit.current_page is second
    assert second.focused_time_ms(10_000) == 1000
    assert visit.returning is True
    assert visit.timezone_offset == 120
    assert visit.language_code == "fr"
    assert visit.time_on_site_s(10_000) == 9.0
    assert visit.time_on_page_s(10_000) == 1.0


def test_identity_transitions():
    registry = VisitRegistry(ListSink(), visit_timeout_s=60)
    steps = [
        ("UserInfo", {"name": "Ada"}, Identity.RECOGNIZED),
        ("SignIn", {"id": "C1"}, Identity.AUTHENTICATED),
        ("UserInfo", {"tier": "gold"}, Identity.AUTHENTICATED),
        ("SignOut", {}, Identity.RECOGNIZED),  # GWE: still known after signing out
        ("UserInfo", {"name": "Bob"}, Identity.RECOGNIZED),
    ]
    for t, (name, data, identity) in enumerate(steps):
        registry.ingest([ev(name, PAGE1, t, data)])
        visit = registry.get(VISIT)
        assert visit is not None
        assert visit.identity is identity, name
    # What the visitor said is kept after SignOut (GWE's Recognized scope), newest wins.
    assert visit.user_info == {"name": "Bob", "id": "C1", "tier": "gold"}


def test_duplicates_are_dropped_and_sink_gets_each_visit_once():
    sink = ListSink()
    registry = VisitRegistry(sink, visit_timeout_s=60)
    other = new_id()
    batch = [ev("PageEntered", PAGE1, 1), ev("AddToCart", PAGE1, 2, system=False),
             ev("PageEntered", PAGE2, 3, visit=other)]  # fmt: skip
    fresh, duplicates = registry.ingest(batch)
    assert (len(fresh), duplicates) == (3, 0)
    fresh, duplicates = registry.ingest(batch)
    assert (len(fresh), duplicates) == (0, 3)
    assert sink.recorded == [(VISIT, 2), (other, 1)]


async def test_idle_visits_close_and_old_history_is_purged(tmp_path: Path):
    history = SQLiteHistory(tmp_path / "h.sqlite3", flush_interval_s=10)
    await history.open()
    try:
        registry = VisitRegistry(history, visit_timeout_s=60)
        registry.ingest([ev("PageEntered", PAGE1, 1_000)])  # idle since 1970
        assert await close_idle_visits(registry) == 1
        assert registry.get(VISIT) is None
        stored = await history.get_visit(VISIT)
        assert stored is not None
        assert stored["closedAt"] is not None
        assert stored["pages"][0]["exitedAt"] == 1_000
        assert await purge_history(history, retention_days=90) == 1
        assert await history.get_visit(VISIT) is None
    finally:
        await history.close()


async def test_recent_history_is_not_purged(tmp_path: Path):
    from engagement.monitoring.ingest import now_ms

    history = SQLiteHistory(tmp_path / "h.sqlite3")
    await history.open()
    try:
        registry = VisitRegistry(history, visit_timeout_s=60)
        registry.ingest([ev("PageEntered", PAGE1, now_ms())])
        assert await close_idle_visits(registry) == 0
        assert await purge_history(history, retention_days=1) == 0
        assert await history.get_visit(VISIT) is not None
    finally:
        await history.close()


async def test_the_scheduler_really_runs_async_jobs():
    """Jobs must run on the loop and be awaited (a lambda returning a coroutine would not)."""
    import asyncio
    from functools import partial

    from engagement.scheduler import Job, start_scheduler

    ran = asyncio.Event()

    async def job(flag: asyncio.Event) -> None:
        flag.set()

    scheduler = start_scheduler([Job(partial(job, ran), 0.05, "probe")])
    try:
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        scheduler.shutdown(wait=False)


def test_declared_jobs_are_awaitable():
    import inspect

    from apscheduler.util import iscoroutinefunction_partial

    from engagement.notifications.hub import LocalHub
    from engagement.scheduler import jobs

    for job in jobs(VisitRegistry(ListSink(), 60), None, 90, LocalHub(), None):  # type: ignore[arg-type]
        assert iscoroutinefunction_partial(job.func), job.name
        assert not inspect.isfunction(job.func) or inspect.iscoroutinefunction(job.func)


async def test_a_graceful_close_writes_the_latest_last_seen(tmp_path: Path):
    """last_seen_at alone is written at most every 10 s, but never lost at a graceful stop."""
    path = tmp_path / "h.sqlite3"
    history = SQLiteHistory(path, flush_interval_s=10)
    await history.open()
    registry = VisitRegistry(history, visit_timeout_s=60)
    registry.ingest([ev("PageEntered", PAGE1, 1_000)])
    await history.flush()
    registry.ingest([ev("AddToCart", PAGE1, 4_000, system=False)])  # 3 s later: row held back
    await history.flush()
    stored = await history.get_visit(VISIT)
    assert stored is not None
    assert stored["lastSeenAt"] == 1_000
    await history.close()

    history = SQLiteHistory(path)
    await history.open()
    try:
        stored = await history.get_visit(VISIT)
        assert stored is not None
        assert stored["lastSeenAt"] == 4_000
        assert len(stored["events"]) == 2
    finally:
        await history.close()


async def test_a_visit_read_shows_one_state_while_the_writer_runs(tmp_path: Path):
    """A read of a visit (row, pages, events) never mixes two flushes: the identity it shows
    is the one its last sign-in or sign-out event left (CI once saw 'anonymous' beside a
    SignOut, the visit row read before a flush and the events after it)."""
    import asyncio

    history = SQLiteHistory(tmp_path / "h.sqlite3", flush_interval_s=10)
    await history.open()
    registry = VisitRegistry(history, visit_timeout_s=60)
    registry.ingest([ev("PageEntered", PAGE1, 1_000)])
    await history.flush()
    expected = {"PageEntered": "anonymous", "SignIn": "authenticated", "SignOut": "recognized"}
    done = False

    async def writer() -> None:
        nonlocal done
        for i in range(150):
            registry.ingest([ev("SignIn" if i % 2 == 0 else "SignOut", PAGE1, 2_000 + i)])
            await history.flush()
        done = True

    mixed: list[tuple[str, str]] = []
    reads = 0

    async def reader() -> None:
        nonlocal reads
        while not done:
            stored = await history.get_visit(VISIT)
            assert stored is not None
            last = stored["events"][-1]["eventName"]
            reads += 1
            if stored["identity"] != expected[last]:
                mixed.append((stored["identity"], last))

    try:
        await asyncio.gather(writer(), reader())
    finally:
        await history.close()
    assert reads > 10
    assert mixed == []


async def test_close_ends_when_the_writer_was_woken_as_it_was_stopped(tmp_path: Path):
    """Python 3.11's wait_for can swallow a cancellation that meets the wake-up; the writer must
    end anyway, or a stop waits for the stop timer and skips the final write."""
    history = SQLiteHistory(tmp_path / "h.sqlite3", flush_interval_s=3600)
    await history.open()
    try:
        for _ in range(8):  # batches big enough to wake the writer, written by hand too
            for _ in range(500):
                visit = Visit(new_id(), GVID, started_at=1, last_seen_at=1)
                history.record(visit, [ev("AddToCart", PAGE1, t, visit=visit.visit_id)
                                       for t in range(4)])  # fmt: skip
            await history.flush()
    finally:
        closing = asyncio.create_task(history.close())
        done, _ = await asyncio.wait({closing}, timeout=10)  # close() itself swallows a cancel
        if not done:
            closing.cancel()
            await closing
    assert closing in done, "close() waited for a writer that did not end"
    assert history.pending == 0


def test_held_back_keeps_the_last_five_reasons_and_one_per_repeat():
    visit = Visit(visit_id=VISIT, global_visit_id=GVID, started_at=0, last_seen_at=0)
    assert visit.held_back is None  # most visits never have one
    visit.hold_back(1, "a", "strict mode: an engagement is live")
    visit.hold_back(2, "a", "strict mode: an engagement is live")  # the same again: its time
    assert visit.held_back == [(2, "a", "strict mode: an engagement is live")]
    for t, name in enumerate("bcdef", start=3):
        visit.hold_back(t, name, "limit per_visit")
    assert visit.held_back == [
        (3, "b", "limit per_visit"),
        (4, "c", "limit per_visit"),
        (5, "d", "limit per_visit"),
        (6, "e", "limit per_visit"),
        (7, "f", "limit per_visit"),
    ]


async def test_a_visit_seen_again_moves_only_its_rows_last_seen(tmp_path: Path):
    """Past the refresh interval a visit's row gets its new last_seen_at; the rest of the row
    stays as written whole (an UPDATE of that one column, not the whole upsert)."""
    history = SQLiteHistory(tmp_path / "h.sqlite3", flush_interval_s=3600)
    await history.open()
    try:
        registry = VisitRegistry(history, visit_timeout_s=3600)
        start = ev("VisitStarted", PAGE1, 1_000, {"userAgent": "ua", "timezoneOffset": -60})
        registry.ingest([start, ev("PageEntered", PAGE1, 1_000, {"title": "Home"})])
        await history.flush()
        registry.ingest([ev("AddToCart", PAGE1, 12_000, system=False)])  # 11 s later
        await history.flush()
        row = await history.db.fetchone("SELECT * FROM visits WHERE visit_id = ?", (VISIT,))
        assert row is not None
        assert tuple(row) == (
            VISIT, GVID, 1_000, 12_000, None, "anonymous", "{}", 0, "ua", "fr", -60
        )  # fmt: skip
    finally:
        await history.close()


async def test_the_idle_sweep_closes_every_idle_visit_slice_by_slice():
    from engagement.monitoring.ingest import now_ms

    sink = ListSink()
    registry = VisitRegistry(sink, visit_timeout_s=60)
    idle = [new_id() for _ in range(7)]
    registry.ingest([ev("PageEntered", PAGE1, 1_000 + i, visit=v) for i, v in enumerate(idle)])
    registry.ingest([ev("PageEntered", PAGE1, now_ms(), visit=VISIT)])  # active

    assert await close_idle_visits(registry, slice_size=3) == 7

    assert sink.closed == idle
    assert registry.visit_ids() == [VISIT]


async def test_a_visit_active_again_during_the_sweep_stays_open():
    from engagement.monitoring.ingest import now_ms

    registry = VisitRegistry(ListSink(), visit_timeout_s=60)
    first, second = new_id(), new_id()
    registry.ingest([ev("PageEntered", PAGE1, 1_000, visit=v) for v in (first, second)])

    async def comes_back() -> None:  # runs between the sweep's two slices
        registry.ingest([ev("PageEntered", PAGE2, now_ms(), visit=second)])

    back = asyncio.create_task(comes_back())
    assert await close_idle_visits(registry, slice_size=1) == 1
    await back
    assert registry.visit_ids() == [second]

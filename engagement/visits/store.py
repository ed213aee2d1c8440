"""Durable visit history (SQLite or PostgreSQL), written in batches behind the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import orjson

from .. import constants as C
from ..attempts import Attempt, Origin, State
from ..db.base import Database, Queries, Record, Transaction
from ..db.connect import open_database
from ..db.migrations import migrate
from ..experiments.model import Conversion
from .model import NO_DIRTY, Event, EventType, Page, Visit

log = logging.getLogger(__name__)

# A visit seen again after a restart merges into its row instead of replacing it.
UPSERT_VISIT = """
INSERT INTO visits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (visit_id) DO UPDATE SET
    started_at = MIN(visits.started_at, excluded.started_at),
    last_seen_at = MAX(visits.last_seen_at, excluded.last_seen_at),
    closed_at = excluded.closed_at,
    identity = excluded.identity,
    user_info = excluded.user_info,
    is_returning = MAX(visits.is_returning, excluded.is_returning),
    user_agent = CASE WHEN excluded.user_agent = '' THEN visits.user_agent
                      ELSE excluded.user_agent END,
    language_code = excluded.language_code,
    timezone_offset = COALESCE(excluded.timezone_offset, visits.timezone_offset)
"""
# A live visit whose row is written and has only been seen again: that column alone, without
# the upsert's index updates (started_at is in two indexes): half the instructions per row.
TOUCH_VISIT = "UPDATE visits SET last_seen_at = MAX(last_seen_at, ?) WHERE visit_id = ?"
UPSERT_PAGE = """
INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (visit_id, page_id) DO UPDATE SET
    url = excluded.url, title = excluded.title, referrer = excluded.referrer,
    utm = excluded.utm, entered_at = MIN(pages.entered_at, excluded.entered_at),
    exited_at = excluded.exited_at, focused_ms = MAX(pages.focused_ms, excluded.focused_ms)
"""
INSERT_EVENT = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_ATTEMPT = """
INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (attempt_id) DO UPDATE SET
    state = excluded.state, updated_at = excluded.updated_at, transitions = excluded.transitions,
    handoff = excluded.handoff, variant = excluded.variant
"""
INSERT_CONVERSION = "INSERT OR IGNORE INTO conversions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

Row = tuple[Any, ...]
Batch = list[tuple[str, list[Row]]]  # (statement, rows) pairs, executed in order


class RowSource(Protocol):
    """More tables written in the history's transactions (identities...); their schema is
    in engagement/db/migrations.py."""

    purge: tuple[str, ...]  # statements run by the retention purge, with `before_ms`

    @property
    def pending(self) -> int: ...

    def take(self) -> Batch: ...

    def put_back(self, batch: Batch) -> None: ...


T = TypeVar("T")

# What one row can do wrong (an integer past int64, text that is not UTF-8 or that PostgreSQL
# cannot hold, data that json cannot write, a broken constraint): that row alone is set aside.
# Anything else (disk full, database locked or unreachable, read-only) is the store's and keeps
# every row for the next try.
ROW_ERRORS = (
    OverflowError,
    ValueError,
    TypeError,
    RecursionError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    asyncpg.DataError,  # PostgreSQL's class 22: out of range, a NUL in text...
    asyncpg.IntegrityConstraintViolationError,
)
TABLES = ("visits", "pages", "events", "attempts", "conversions")


def _visit_row(visit: Visit) -> Row:
    return (
        visit.visit_id,
        visit.global_visit_id,
        visit.started_at,
        visit.last_seen_at,
        visit.closed_at,
        visit.identity.value,
        json.dumps(visit.user_info),
        int(visit.returning),
        visit.user_agent,
        visit.language_code,
        visit.timezone_offset,
    )


def _split_stale(visits: Iterable[Visit], final: bool) -> tuple[list[Visit], list[Visit]]:
    """The visits whose row needs writing whole (something besides last_seen_at changed, or
    ``final``), and those whose last_seen_at alone is due: it moves on every event, and is
    written at most every VISIT_ROW_REFRESH_MS (retention does not need it finer)."""
    whole: list[Visit] = []
    seen: list[Visit] = []
    for visit in visits:
        if final or visit.changed:
            whole.append(visit)
        elif visit.last_seen_at - visit.stored_last_seen >= C.VISIT_ROW_REFRESH_MS:
            seen.append(visit)
        else:
            continue
        visit.changed = False
        visit.stored_last_seen = visit.last_seen_at
    return whole, seen


def _take_dirty_pages(visit: Visit) -> list[Page]:
    pages = visit.dirty_pages
    visit.dirty_pages = NO_DIRTY
    return list(pages.values())


def _page_row(visit: Visit, p: Page, seq: int) -> Row:
    return (
        visit.visit_id,
        p.page_id,
        p.url,
        p.title,
        p.referrer,
        json.dumps(p.utm),
        p.entered_at,
        p.exited_at,
        p.focused_ms,
        seq,
    )


def _attempt_row(a: Attempt) -> Row:
    return (
        a.attempt_id,
        a.visit_id,
        a.global_visit_id,
        a.page_id,
        a.strategy,
        a.origin.value,
        a.invite,
        a.media,
        json.dumps(a.params),
        a.timeout_s,
        a.created_at,
        a.state.value,
        a.transitions[-1][1],
        json.dumps([[s.value, t, r] for s, t, r in a.transitions]),
        json.dumps(a.handoff),
        a.variant,
    )


def _conversion_row(c: Conversion) -> Row:
    return (c.attempt_id, c.event_id, c.strategy, c.variant, c.visit_id, c.global_visit_id,
            c.goal, c.at, c.value)  # fmt: skip


EVENT_ROWS_PER_SLICE = 250  # event rows built between two turns of the loop


def _event_row(e: Event, seq: int) -> Row:
    return (
        e.visit_id,
        e.event_id,
        e.page_id,
        e.global_visit_id,
        e.event_type._value_,  # not .value: a property, two Python calls (3.11), per event
        e.event_name,
        e.timestamp,
        e.server_time,
        e.url,
        e.category,
        e.language_code,
        orjson.dumps(e.data).decode(),  # the hot path's row: orjson, compact
        seq,
    )


class History:
    """Visit history in a SQLite file or a PostgreSQL database (``location``: a path or a
    ``postgresql://`` URL).

    ``record`` only queues rows (no I/O); a background task writes them every
    ``flush_interval_s`` in one transaction. ``close`` writes what is left.
    """

    def __init__(
        self, location: Path | str, flush_interval_s: float = C.HISTORY_FLUSH_INTERVAL_S
    ) -> None:
        self.location = location
        self.flush_interval_s = flush_interval_s
        self._db: Database | None = None
        # Only references on the hot path; rows are built when written, once per visit.
        self._visits: dict[str, Visit] = {}
        self._events: list[Event] = []
        self._attempts: dict[str, Row] = {}
        self._conversions: list[Conversion] = []
        self._behind: dict[str, Visit] = {}  # rows whose last_seen_at is not written yet
        self._writing = 0  # rows taken by the flush being written (not written yet either)
        self._seq = itertools.count(time.time_ns() // 1000)  # grows across restarts too
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()
        self.write_error: str | None = None  # why the last background write failed, if it did
        self.sources: list[RowSource] = []  # written in the same transaction as visits
        self.set_aside = dict.fromkeys(TABLES, 0)  # rows the store could not hold, per table
        self.unreadable = dict.fromkeys(TABLES, 0)  # rows left out of reads, per table

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the history store is not open")
        return self._db

    @property
    def pending(self) -> int:
        """Rows not written yet: queued, or in the write under way."""
        queued = len(self._visits) + len(self._events) + len(self._attempts)
        queued += len(self._conversions) + sum(s.pending for s in self.sources)
        return queued + self._writing

    async def open(self) -> None:
        db = await open_database(self.location)
        try:
            await migrate(db)
        except BaseException:
            await db.close()  # a SQLite thread would keep the process alive
            raise
        self._db = db
        self._writer = asyncio.create_task(self._write_loop(), name="history-writer")

    async def close(self) -> None:
        if self._writer is not None:
            # Told, not cancelled: a batch being written is committed, not rolled back (and
            # Python 3.11's wait_for can swallow a cancel that meets the wake-up).
            self._closing = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):  # at exit, others cancel tasks
                await self._writer
            self._writer = None
        if self._db is not None:
            try:
                await self.flush(final=True)
            except Exception as exc:
                log.error("history: %d rows could not be written at close: %s", self.pending, exc)
            finally:
                await self._db.close()
                self._db = None

    # -- writes: queued on the hot path, written behind it --

    def record(self, visit: Visit, events: list[Event]) -> None:
        self._visits[visit.visit_id] = visit
        self._events.extend(events)
        if len(self._events) >= C.HISTORY_FLUSH_MAX_ROWS:
            self._wake.set()

    def record_closed(self, visit: Visit) -> None:
        self.record(visit, [])

    def record_attempt(self, attempt: Attempt) -> None:
        try:
            self._attempts[attempt.attempt_id] = _attempt_row(attempt)
        except ROW_ERRORS as exc:
            self._set_aside("attempts", attempt.attempt_id, exc)

    def _set_aside(self, table: str, key: str, exc: BaseException) -> None:
        self.set_aside[table] = self.set_aside.get(table, 0) + 1
        log.error("history: a %s row (%s) cannot be stored and is set aside: %r", table, key, exc)

    def _build(self, table: str, build: Callable[[Any], Row], items: Iterable[Any]) -> list[Row]:
        rows = []
        for item in items:
            try:
                rows.append(build(item))
            except ROW_ERRORS as exc:
                self._set_aside(table, _key_of(item), exc)
        return rows

    def _event_rows(self, events: list[Event]) -> list[Row]:
        seq = self._seq
        try:  # one comprehension; a row that cannot be built sends the slice the slow way
            return [_event_row(e, next(seq)) for e in events]
        except ROW_ERRORS:
            return self._build("events", lambda e: _event_row(e, next(seq)), events)

    def record_conversion(self, conversion: Conversion) -> None:
        self._conversions.append(conversion)

    async def shared(self, attempt: Attempt) -> None:
        """One node: its own memory is what every request reads."""

    async def write_attempt(self, attempt: Attempt) -> None:
        """Write the attempt now, committed when this returns (an acceptance is kept before
        the visitor is told of it)."""
        row = _attempt_row(attempt)
        self._attempts.pop(attempt.attempt_id, None)
        async with self._lock:
            await self.db.execute(UPSERT_ATTEMPT, row)

    async def _write_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            if self._closing:
                return
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                self.write_error = f"{type(exc).__name__}: {exc}"
                log.exception("history write failed; %d rows kept for the next try", self.pending)
            else:
                self.write_error = None

    async def flush(self, final: bool = False) -> None:
        """Write everything queued so far (``final``: visit rows too, however fresh)."""
        async with self._lock:
            if not self.pending and not (final and self._behind):
                return
            visits, events, attempts = self._visits, self._events, self._attempts
            conversions = self._conversions
            self._visits, self._events, self._attempts, self._conversions = {}, [], {}, []
            # Visit and page rows are built here, before the first await: a consistent snapshot.
            seq = self._seq
            if final:  # rows held back by the refresh interval are written now
                visits = {**self._behind, **visits}
            whole, seen = _split_stale(visits.values(), final)
            visit_rows = self._build("visits", _visit_row, whole)
            seen_rows = [(v.last_seen_at, v.visit_id) for v in seen]
            for v in visits.values():
                self._behind[v.visit_id] = v
            for written in (whole, seen):
                for v in written:
                    del self._behind[v.visit_id]
            unwritten_pages = [(v, _take_dirty_pages(v)) for v in visits.values()]
            page_rows = [_page_row(v, p, next(seq)) for v, pages in unwritten_pages for p in pages]
            event_rows: list[Row] = []
            batches = [
                ("visits", UPSERT_VISIT, visit_rows),
                ("visits", TOUCH_VISIT, seen_rows),
                ("pages", UPSERT_PAGE, page_rows),
                ("events", INSERT_EVENT, event_rows),
                ("attempts", UPSERT_ATTEMPT, list(attempts.values())),
                (
                    "conversions",
                    INSERT_CONVERSION,
                    self._build("conversions", _conversion_row, conversions),
                ),
            ]
            more = [(source, source.take()) for source in self.sources]
            batches += [(_table_of(sql), sql, rows) for _, batch in more for sql, rows in batch]
            self._writing = len(visits) + len(events) + len(attempts) + len(conversions)
            self._writing += sum(len(rows) for _, batch in more for _, rows in batch)
            started = time.perf_counter()
            try:
                # An event does not change once applied: its rows are built a slice at a time,
                # letting the loop run between slices (a flush of 2,000 events built whole
                # held the loop for several milliseconds).
                for start in range(0, len(events), EVENT_ROWS_PER_SLICE):
                    if start:
                        await asyncio.sleep(0)
                    event_rows += self._event_rows(events[start : start + EVENT_ROWS_PER_SLICE])
                try:
                    async with self.db.transaction() as tx:
                        for _, sql, rows in batches:
                            await tx.executemany(sql, rows)
                except ROW_ERRORS as exc:
                    log.warning("history: a batch failed (%r); writing its rows one by one", exc)
                    async with self.db.transaction() as tx:
                        await self._write_one_by_one(tx, batches)
            except BaseException:
                # Put everything back; newer state queued meanwhile is the same objects.
                for v, pages in unwritten_pages:
                    v.dirty_pages = {**{p.page_id: p for p in pages}, **v.dirty_pages}
                    v.changed = True  # its row was not written after all
                self._visits = {**visits, **self._visits}
                self._events = events + self._events
                self._attempts = {**attempts, **self._attempts}
                self._conversions = conversions + self._conversions
                for source, batch in more:
                    source.put_back(batch)
                raise
            finally:
                self._writing = 0
            log.debug(
                "wrote %d visits, %d pages, %d events in %.1f ms",
                len(visit_rows) + len(seen_rows),
                len(page_rows),
                len(event_rows),
                (time.perf_counter() - started) * 1000,
            )

    def read_rows(
        self, table: str, convert: Callable[[Record], T], rows: Iterable[Record]
    ) -> list[T]:
        """Rows as records; one that cannot be read (written by another version, or by hand)
        is left out with a log line, never failing the whole read."""
        out = []
        for row in rows:
            try:
                out.append(convert(row))
            except (*ROW_ERRORS, KeyError, IndexError) as exc:
                self.unreadable[table] += 1
                log.error("history: a %s row (%s) cannot be read: %r", table, row[0], exc)
        return out

    async def _write_one_by_one(
        self, tx: Transaction, batches: list[tuple[str, str, list[Row]]]
    ) -> None:
        """Every row that can be written is; the others are set aside (a failed statement
        undoes itself alone, the transaction goes on)."""
        for table, sql, rows in batches:
            for row in rows:
                try:
                    async with tx.savepoint():
                        await tx.execute(sql, row)
                except ROW_ERRORS as exc:
                    self._set_aside(table, f"{row[0]}/{row[1]}", exc)

    async def purge(self, before_ms: int) -> int:
        """Delete visits last seen before ``before_ms`` with their pages and events."""
        await self.flush()
        old = "SELECT visit_id FROM visits WHERE last_seen_at < ?"
        async with self._lock, self.db.transaction() as tx:
            for statement in (s for source in self.sources for s in source.purge):
                await tx.execute(statement, (before_ms,))
            await tx.execute(f"DELETE FROM events WHERE visit_id IN ({old})", (before_ms,))
            await tx.execute(f"DELETE FROM pages WHERE visit_id IN ({old})", (before_ms,))
            await tx.execute(f"DELETE FROM attempts WHERE visit_id IN ({old})", (before_ms,))
            await tx.execute("DELETE FROM conversions WHERE at < ?", (before_ms,))
            return await tx.execute("DELETE FROM visits WHERE last_seen_at < ?", (before_ms,))

    # -- a visitor's rights: export and erasure (plain SQL, PostgreSQL's too) --

    async def rows_where(
        self, keys: Mapping[str, tuple[str, Sequence[str]]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Per table, the rows whose ``column`` holds one of ``values`` (what is queued is
        written first), as plain dicts, read in one state."""
        found: dict[str, list[dict[str, Any]]] = {}
        async with self.snapshot() as db:
            for table, (column, values) in keys.items():
                rows = found[table] = []
                for chunk in _chunks(values):
                    marks = ", ".join("?" * len(chunk))
                    sql = f"SELECT * FROM {table} WHERE {column} IN ({marks})"
                    rows += [
                        dict(zip(r.keys(), r, strict=True)) for r in await db.fetchall(sql, chunk)
                    ]
        return found

    async def delete_where(self, keys: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, int]:
        """Delete, in one transaction, per table the rows whose ``column`` holds one of
        ``values``; what is queued is written first, so none of it comes back after."""
        await self.flush()
        deleted: dict[str, int] = {}
        async with self._lock, self.db.transaction() as tx:
            column, visit_ids = keys.get("visits", ("", ()))
            if column == "visit_id":  # a held-back row would come back at the final write
                for visit_id in visit_ids:
                    self._behind.pop(visit_id, None)
            for table, (column, values) in keys.items():
                deleted[table] = 0
                for chunk in _chunks(values):
                    marks = ", ".join("?" * len(chunk))
                    sql = f"DELETE FROM {table} WHERE {column} IN ({marks})"
                    deleted[table] += await tx.execute(sql, chunk)
        return deleted

    # -- reads (agents' tools; they see everything recorded so far) --

    async def catch_up(self) -> None:
        """Write what is queued so that a read sees it; a write that fails is logged, not
        raised: reads answer from what is stored while the writer retries."""
        try:
            await self.flush()
        except Exception:
            log.exception("history write failed before a read; answering from what is stored")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Queries]:
        """Write what is queued, then hold the writer off while the caller reads several
        tables, so that they show one state (a flush between two SELECTs would show a visit
        row older than the events read after it); on PostgreSQL, one repeatable-read
        transaction also keeps other nodes' writes out of the middle."""
        await self.catch_up()
        async with self._lock, self.db.snapshot() as db:
            yield db

    async def get_visit(self, visit_id: str) -> dict[str, Any] | None:
        async with self.snapshot() as db:
            return await self._read_visit(db, visit_id)

    async def _read_visit(self, db: Queries, visit_id: str) -> dict[str, Any] | None:
        row = await db.fetchone("SELECT * FROM visits WHERE visit_id = ?", (visit_id,))
        if row is None:
            return None
        found = self.read_rows("visits", visit_json, [row])
        if not found:
            return None
        visit = found[0]
        rows = await db.fetchall(
            "SELECT * FROM pages WHERE visit_id = ? ORDER BY entered_at, seq", (visit_id,)
        )
        visit["pages"] = self.read_rows("pages", _page_json, rows)
        rows = await db.fetchall(
            "SELECT * FROM events WHERE visit_id = ? ORDER BY seq", (visit_id,)
        )
        visit["events"] = self.read_rows("events", _event_json, rows)
        rows = await db.fetchall(
            "SELECT * FROM attempts WHERE visit_id = ? ORDER BY created_at, rowid", (visit_id,)
        )
        visit["attempts"] = [a.as_json() for a in self.read_rows("attempts", _attempt, rows)]
        return visit

    async def attempts_since(self, since_ms: int) -> list[Attempt]:
        """Attempts created since ``since_ms``, oldest first (frequency limits need them)."""
        await self.catch_up()
        rows = await self.db.fetchall(
            "SELECT * FROM attempts WHERE created_at >= ? ORDER BY created_at", (since_ms,)
        )
        return self.read_rows("attempts", _attempt, rows)

    async def live_visits(self, since_ms: int) -> list[tuple[Record, list[Event]]]:
        """Visits not closed and seen since ``since_ms`` (least recently seen first), each with
        its events in arrival order: what a restarted engine takes back as live."""
        rows = await self.db.fetchall(
            "SELECT * FROM visits WHERE closed_at IS NULL AND last_seen_at >= ? "
            "ORDER BY last_seen_at",
            (since_ms,),
        )
        query = """
            SELECT e.* FROM events e JOIN visits v ON v.visit_id = e.visit_id
            WHERE v.closed_at IS NULL AND v.last_seen_at >= ? ORDER BY e.visit_id, e.seq
        """
        by_visit: dict[str, list[Event]] = {}
        for event in self.read_rows("events", _event, await self.db.fetchall(query, (since_ms,))):
            by_visit.setdefault(event.visit_id, []).append(event)
        return [(row, by_visit.get(row["visit_id"], [])) for row in rows]

    async def replay_source(
        self, since_ms: int, until_ms: int
    ) -> tuple[list[Event], list[Attempt]]:
        """For a dry run: the events of visits started in [since, until), in arrival order,
        and the attempts created from LEDGER_DAYS before ``since`` until ``until``."""
        query = """
            SELECT e.* FROM events e JOIN visits v ON v.visit_id = e.visit_id
            WHERE v.started_at >= ? AND v.started_at < ? ORDER BY e.server_time, e.seq
        """
        earliest = since_ms - C.LEDGER_DAYS * 86_400_000
        async with self.snapshot() as db:
            events = [_event(r) for r in await db.fetchall(query, (since_ms, until_ms))]
            rows = await db.fetchall(
                "SELECT * FROM attempts WHERE created_at >= ? AND created_at < ? "
                "ORDER BY created_at",
                (earliest, until_ms),
            )
            attempts = [_attempt(r) for r in rows]
        return events, attempts

    async def visits_of_visitor(self, global_visit_id: str, limit: int) -> list[dict[str, Any]]:
        await self.catch_up()
        query = """
            SELECT v.*, (SELECT COUNT(*) FROM pages p WHERE p.visit_id = v.visit_id) AS n_pages
            FROM visits v WHERE v.global_visit_id = ? ORDER BY v.started_at DESC LIMIT ?
        """
        rows = await self.db.fetchall(query, (global_visit_id, limit))
        return self.read_rows(
            "visits", lambda r: {**visit_json(r), "pagesViewed": r["n_pages"]}, rows
        )


SQLiteHistory = History  # its name before PostgreSQL: kept for code that still says it


def _chunks(values: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    """``IN`` lists of at most ``size`` parameters (every database has a limit)."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def _table_of(statement: str) -> str:
    """The table an INSERT writes to, to name it when one of its rows is set aside."""
    found = re.search(r"\bINTO\s+(\w+)", statement, re.IGNORECASE)
    return found.group(1) if found else "other"


def _key_of(item: Visit | Event | Conversion) -> str:
    return item.visit_id if isinstance(item, Visit) else f"{item.visit_id}/{item.event_id}"


def visit_json(r: Record) -> dict[str, Any]:
    return {
        "visitID": r["visit_id"],
        "globalVisitID": r["global_visit_id"],
        "identity": r["identity"],
        "userInfo": json.loads(r["user_info"]),
        "returning": bool(r["is_returning"]),
        "startedAt": r["started_at"],
        "lastSeenAt": r["last_seen_at"],
        "closedAt": r["closed_at"],
        "userAgent": r["user_agent"],
        "languageCode": r["language_code"],
        "timezoneOffset": r["timezone_offset"],
    }


def _attempt(r: Record) -> Attempt:
    return Attempt(
        attempt_id=r["attempt_id"],
        visit_id=r["visit_id"],
        global_visit_id=r["global_visit_id"],
        page_id=r["page_id"],
        strategy=r["strategy"],
        origin=Origin(r["origin"]),
        invite=r["invite"],
        media=r["media"],
        params=json.loads(r["params"]),
        timeout_s=r["timeout_s"],
        created_at=r["created_at"],
        state=State(r["state"]),
        transitions=[(State(s), t, why) for s, t, why in json.loads(r["transitions"])],
        handoff=json.loads(r["handoff"]),
        variant=r["variant"],
    )


def _event(r: Record) -> Event:
    return Event(r["event_id"], EventType(r["event_type"]), r["event_name"], r["visit_id"],
                 r["page_id"], r["global_visit_id"], r["timestamp"], r["server_time"], r["url"],
                 r["category"], r["language_code"], json.loads(r["data"]))  # fmt: skip


def _page_json(r: Record) -> dict[str, Any]:
    return {
        "pageID": r["page_id"],
        "url": r["url"],
        "title": r["title"],
        "referrer": r["referrer"],
        "utm": json.loads(r["utm"]),
        "enteredAt": r["entered_at"],
        "exitedAt": r["exited_at"],
        "focusedMs": r["focused_ms"],
    }


def _event_json(r: Record) -> dict[str, Any]:
    return {
        "eventType": r["event_type"],
        "eventName": r["event_name"],
        "eventID": r["event_id"],
        "pageID": r["page_id"],
        "visitID": r["visit_id"],
        "globalVisitID": r["global_visit_id"],
        "timestamp": r["timestamp"],
        "serverTime": r["server_time"],
        "url": r["url"],
        "category": r["category"],
        "languageCode": r["language_code"],
        "data": json.loads(r["data"]),
    }

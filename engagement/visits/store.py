"""Durable visit history in SQLite, written in batches behind the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from .. import constants as C
from ..attempts import Attempt, Origin, State
from ..experiments.model import Conversion
from .model import NO_DIRTY, Event, EventType, Page, Visit

log = logging.getLogger(__name__)

# Pages and events live clustered by visit: a visit's rows share B-tree pages, so a batch
# dirties few of them, and reading a visit is one range scan. `seq` keeps arrival order.
SCHEMA_VERSION = 3
# Each step brings a store of the version before it up to date, in one transaction.
MIGRATIONS = {
    2: """
ALTER TABLE attempts ADD COLUMN variant TEXT NOT NULL DEFAULT '';
""",
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    visit_id TEXT PRIMARY KEY,
    global_visit_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    closed_at INTEGER,
    identity TEXT NOT NULL,
    user_info TEXT NOT NULL,
    is_returning INTEGER NOT NULL,
    user_agent TEXT NOT NULL,
    language_code TEXT NOT NULL,
    timezone_offset INTEGER
);
CREATE INDEX IF NOT EXISTS visits_global ON visits (global_visit_id, started_at);
CREATE INDEX IF NOT EXISTS visits_started ON visits (started_at, visit_id);
CREATE TABLE IF NOT EXISTS pages (
    visit_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    referrer TEXT NOT NULL,
    utm TEXT NOT NULL,
    entered_at INTEGER NOT NULL,
    exited_at INTEGER,
    focused_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (visit_id, page_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    visit_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_name TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    server_time INTEGER NOT NULL,
    url TEXT NOT NULL,
    category TEXT NOT NULL,
    language_code TEXT NOT NULL,
    data TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (visit_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    origin TEXT NOT NULL,
    invite TEXT NOT NULL,
    media TEXT NOT NULL,
    params TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    transitions TEXT NOT NULL,
    handoff TEXT NOT NULL DEFAULT '{}',
    variant TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS attempts_visit ON attempts (visit_id, created_at);
CREATE INDEX IF NOT EXISTS attempts_visitor ON attempts (global_visit_id, created_at);
CREATE INDEX IF NOT EXISTS attempts_created ON attempts (created_at);
CREATE INDEX IF NOT EXISTS pages_page ON pages (page_id);
DROP INDEX IF EXISTS events_page;
CREATE TABLE IF NOT EXISTS conversions (
    attempt_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    variant TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    global_visit_id TEXT NOT NULL,
    goal TEXT NOT NULL,
    at INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (attempt_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversions_at ON conversions (at);
"""

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
    """More tables written in the history's transactions (identities...)."""

    schema: str
    purge: tuple[str, ...]  # statements run by the retention purge, with `before_ms`

    @property
    def pending(self) -> int: ...

    def take(self) -> Batch: ...

    def put_back(self, batch: Batch) -> None: ...


T = TypeVar("T")

# What one row can do wrong (an integer past SQLite's int64, text that is not UTF-8, data that
# json cannot write, a broken constraint): that row alone is set aside. Anything else (disk
# full, database locked, read-only) is the store's and keeps every row for the next try.
ROW_ERRORS = (
    OverflowError,
    ValueError,
    TypeError,
    RecursionError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
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


def _row_stale(visit: Visit) -> bool:
    """Whether the visit's row needs writing: last_seen_at alone moves on every event, and is
    written at most every VISIT_ROW_REFRESH_MS (retention does not need it finer)."""
    if visit.changed or visit.last_seen_at - visit.stored_last_seen >= C.VISIT_ROW_REFRESH_MS:
        visit.changed = False
        visit.stored_last_seen = visit.last_seen_at
        return True
    return False


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


def _event_row(e: Event, seq: int) -> Row:
    return (
        e.visit_id,
        e.event_id,
        e.page_id,
        e.global_visit_id,
        e.event_type.value,
        e.event_name,
        e.timestamp,
        e.server_time,
        e.url,
        e.category,
        e.language_code,
        json.dumps(e.data),
        seq,
    )


class SQLiteHistory:
    """Visit history in one SQLite file.

    ``record`` only queues rows (no I/O); a background task writes them every
    ``flush_interval_s`` in one transaction. ``close`` writes what is left.
    """

    def __init__(self, path: Path, flush_interval_s: float = C.HISTORY_FLUSH_INTERVAL_S) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._db: aiosqlite.Connection | None = None
        # Only references on the hot path; rows are built when written, once per visit.
        self._visits: dict[str, Visit] = {}
        self._events: list[Event] = []
        self._attempts: dict[str, Row] = {}
        self._conversions: list[Conversion] = []
        self._behind: dict[str, Visit] = {}  # rows whose last_seen_at is not written yet
        self._seq = itertools.count(time.time_ns() // 1000)  # grows across restarts too
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.write_error: str | None = None  # why the last background write failed, if it did
        self.sources: list[RowSource] = []  # written in the same transaction as visits
        self.set_aside = dict.fromkeys(TABLES, 0)  # rows the store could not hold, per table
        self.unreadable = dict.fromkeys(TABLES, 0)  # rows left out of reads, per table

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the history store is not open")
        return self._db

    @property
    def pending(self) -> int:
        queued = len(self._visits) + len(self._events) + len(self._attempts)
        return queued + len(self._conversions) + sum(s.pending for s in self.sources)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Fail here if the file cannot be opened: aiosqlite's thread would outlive the loop.
        sqlite3.connect(self.path).close()
        self._db = await aiosqlite.connect(self.path)
        try:
            await self._prepare()
        except BaseException:
            await self._db.close()  # its thread would keep the process alive
            self._db = None
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="history-writer")

    async def _prepare(self) -> None:
        assert self._db is not None
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA cache_size=-32768")  # 32 MiB: hot B-tree pages stay
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = row[0] if row else 0
        async with self._db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name='events'"
        ) as cur:
            row = await cur.fetchone()
        if row and row[0] and version in MIGRATIONS:
            await self._db.executescript(
                f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version={version + 1}; COMMIT;"
            )
            log.info("history in %s brought from version %d to %d", self.path, version, version + 1)
            version += 1
        if row and row[0] and version != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} holds history in an older format (version {version}); "
                "move it away to start with an empty history"
            )
        await self._db.executescript(SCHEMA)
        for source in self.sources:
            await self._db.executescript(source.schema)
        await self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        await self._db.commit()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
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

    def record_conversion(self, conversion: Conversion) -> None:
        self._conversions.append(conversion)

    async def write_attempt(self, attempt: Attempt) -> None:
        """Write the attempt now, committed when this returns (an acceptance is kept before
        the visitor is told of it)."""
        row = _attempt_row(attempt)
        self._attempts.pop(attempt.attempt_id, None)
        async with self._lock:
            await self.db.execute(UPSERT_ATTEMPT, row)
            await self.db.commit()

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
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
            # Rows are built here, before the first await: a consistent snapshot.
            seq = self._seq
            if final:  # rows held back by the refresh interval are written now
                visits = {**self._behind, **visits}
            written = [v for v in visits.values() if final or _row_stale(v)]
            visit_rows = self._build("visits", _visit_row, written)
            for v in visits.values():
                self._behind[v.visit_id] = v
            for v in written:
                del self._behind[v.visit_id]
            unwritten_pages = [(v, _take_dirty_pages(v)) for v in visits.values()]
            page_rows = [_page_row(v, p, next(seq)) for v, pages in unwritten_pages for p in pages]
            event_rows = self._build("events", lambda e: _event_row(e, next(seq)), events)
            batches = [
                ("visits", UPSERT_VISIT, visit_rows),
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
            started = time.perf_counter()
            try:
                try:
                    for _, sql, rows in batches:
                        await self.db.executemany(sql, rows)
                except ROW_ERRORS as exc:
                    log.warning("history: a batch failed (%r); writing its rows one by one", exc)
                    await self.db.rollback()
                    await self._write_one_by_one(batches)
                await self.db.commit()
            except BaseException:
                if self._db is not None:
                    await self._db.rollback()
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
            log.debug(
                "wrote %d visits, %d pages, %d events in %.1f ms",
                len(visit_rows),
                len(page_rows),
                len(event_rows),
                (time.perf_counter() - started) * 1000,
            )

    def read_rows(
        self, table: str, convert: Callable[[aiosqlite.Row], T], rows: Iterable[aiosqlite.Row]
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

    async def _write_one_by_one(self, batches: list[tuple[str, str, list[Row]]]) -> None:
        """Every row that can be written is; the others are set aside (a failed statement
        undoes itself alone, the transaction goes on)."""
        for table, sql, rows in batches:
            for row in rows:
                try:
                    await self.db.execute(sql, row)
                except ROW_ERRORS as exc:
                    self._set_aside(table, f"{row[0]}/{row[1]}", exc)

    async def purge(self, before_ms: int) -> int:
        """Delete visits last seen before ``before_ms`` with their pages and events."""
        await self.flush()
        async with self._lock:
            old = "SELECT visit_id FROM visits WHERE last_seen_at < ?"
            for statement in (s for source in self.sources for s in source.purge):
                await self.db.execute(statement, (before_ms,))
            await self.db.execute(f"DELETE FROM events WHERE visit_id IN ({old})", (before_ms,))
            await self.db.execute(f"DELETE FROM pages WHERE visit_id IN ({old})", (before_ms,))
            await self.db.execute(f"DELETE FROM attempts WHERE visit_id IN ({old})", (before_ms,))
            await self.db.execute("DELETE FROM conversions WHERE at < ?", (before_ms,))
            cursor = await self.db.execute(
                "DELETE FROM visits WHERE last_seen_at < ?", (before_ms,)
            )
            await self.db.commit()
            return cursor.rowcount

    # -- reads (agents' tools; they see everything recorded so far) --

    async def catch_up(self) -> None:
        """Write what is queued so that a read sees it; a write that fails is logged, not
        raised: reads answer from what is stored while the writer retries."""
        try:
            await self.flush()
        except Exception:
            log.exception("history write failed before a read; answering from what is stored")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """Write what is queued, then hold the writer off while the caller reads several
        tables, so that they show one state (a flush between two SELECTs would show a visit
        row older than the events read after it)."""
        await self.catch_up()
        async with self._lock:
            yield self.db

    async def get_visit(self, visit_id: str) -> dict[str, Any] | None:
        async with self.snapshot() as db:
            return await self._read_visit(db, visit_id)

    async def _read_visit(self, db: aiosqlite.Connection, visit_id: str) -> dict[str, Any] | None:
        async with db.execute("SELECT * FROM visits WHERE visit_id = ?", (visit_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        found = self.read_rows("visits", visit_json, [row])
        if not found:
            return None
        visit = found[0]
        async with db.execute(
            "SELECT * FROM pages WHERE visit_id = ? ORDER BY entered_at, seq", (visit_id,)
        ) as cur:
            visit["pages"] = self.read_rows("pages", _page_json, await cur.fetchall())
        async with db.execute(
            "SELECT * FROM events WHERE visit_id = ? ORDER BY seq", (visit_id,)
        ) as cur:
            visit["events"] = self.read_rows("events", _event_json, await cur.fetchall())
        async with db.execute(
            "SELECT * FROM attempts WHERE visit_id = ? ORDER BY created_at, rowid", (visit_id,)
        ) as cur:
            attempts = self.read_rows("attempts", _attempt, await cur.fetchall())
            visit["attempts"] = [a.as_json() for a in attempts]
        return visit

    async def attempts_since(self, since_ms: int) -> list[Attempt]:
        """Attempts created since ``since_ms``, oldest first (frequency limits need them)."""
        await self.catch_up()
        async with self.db.execute(
            "SELECT * FROM attempts WHERE created_at >= ? ORDER BY created_at", (since_ms,)
        ) as cur:
            return self.read_rows("attempts", _attempt, await cur.fetchall())

    async def live_visits(self, since_ms: int) -> list[tuple[aiosqlite.Row, list[Event]]]:
        """Visits not closed and seen since ``since_ms`` (least recently seen first), each with
        its events in arrival order: what a restarted engine takes back as live."""
        async with self.db.execute(
            "SELECT * FROM visits WHERE closed_at IS NULL AND last_seen_at >= ? "
            "ORDER BY last_seen_at",
            (since_ms,),
        ) as cur:
            rows = list(await cur.fetchall())
        query = """
            SELECT e.* FROM events e JOIN visits v ON v.visit_id = e.visit_id
            WHERE v.closed_at IS NULL AND v.last_seen_at >= ? ORDER BY e.visit_id, e.seq
        """
        by_visit: dict[str, list[Event]] = {}
        async with self.db.execute(query, (since_ms,)) as cur:
            for event in self.read_rows("events", _event, await cur.fetchall()):
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
            async with db.execute(query, (since_ms, until_ms)) as cur:
                events = [_event(r) for r in await cur.fetchall()]
            async with db.execute(
                "SELECT * FROM attempts WHERE created_at >= ? AND created_at < ? "
                "ORDER BY created_at",
                (earliest, until_ms),
            ) as cur:
                attempts = [_attempt(r) for r in await cur.fetchall()]
        return events, attempts

    async def visits_of_visitor(self, global_visit_id: str, limit: int) -> list[dict[str, Any]]:
        await self.catch_up()
        query = """
            SELECT v.*, (SELECT COUNT(*) FROM pages p WHERE p.visit_id = v.visit_id) AS n_pages
            FROM visits v WHERE v.global_visit_id = ? ORDER BY v.started_at DESC LIMIT ?
        """
        async with self.db.execute(query, (global_visit_id, limit)) as cur:
            rows = await cur.fetchall()
        return self.read_rows(
            "visits", lambda r: {**visit_json(r), "pagesViewed": r["n_pages"]}, rows
        )


def _table_of(statement: str) -> str:
    """The table an INSERT writes to, to name it when one of its rows is set aside."""
    found = re.search(r"\bINTO\s+(\w+)", statement, re.IGNORECASE)
    return found.group(1) if found else "other"


def _key_of(item: Visit | Event | Conversion) -> str:
    return item.visit_id if isinstance(item, Visit) else f"{item.visit_id}/{item.event_id}"


def visit_json(r: aiosqlite.Row) -> dict[str, Any]:
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


def _attempt(r: aiosqlite.Row) -> Attempt:
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


def _event(r: aiosqlite.Row) -> Event:
    return Event(r["event_id"], EventType(r["event_type"]), r["event_name"], r["visit_id"],
                 r["page_id"], r["global_visit_id"], r["timestamp"], r["server_time"], r["url"],
                 r["category"], r["language_code"], json.loads(r["data"]))  # fmt: skip


def _page_json(r: aiosqlite.Row) -> dict[str, Any]:
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


def _event_json(r: aiosqlite.Row) -> dict[str, Any]:
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

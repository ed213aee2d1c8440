"""The storage layer: one list of migrations applied on SQLite and PostgreSQL (at start, under
a lock, recorded), files from before migrations upgraded in place, and the dialect translation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engagement.db.base import Database, postgres_schema, postgres_sql
from engagement.db.connect import open_database
from engagement.db.migrations import HISTORY, MIGRATIONS, RECORDS, OldSchemaError, migrate
from engagement.visits.store import UPSERT_VISIT

ALL = [m.version for m in MIGRATIONS]
TABLES = {
    *("visits", "pages", "events", "attempts", "conversions", "identities", "identity_visits"),
    *("push_messages", "audit", "callbacks", "schema_migrations"),
}


@pytest.fixture
async def db(records_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(records_url or tmp_path / "records.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


async def tables_of(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        rows = await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await db.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    return {str(r[0]) for r in rows}


async def test_a_new_database_gets_every_migration_once(db: Database):
    assert await migrate(db) == ALL
    assert await migrate(db) == []  # the next start finds nothing to do
    rows = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    assert await tables_of(db) >= TABLES  # and those of later migrations


async def test_nodes_starting_together_apply_each_migration_once(database_url: str):
    nodes = [await open_database(database_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(n) for n in nodes))
    finally:
        for node in nodes:
            await node.close()
    assert sorted(v for done in applied for v in done) == ALL


async def test_timestamps_past_32_bits_and_blobs_fit_on_both_engines(db: Database):
    await migrate(db)
    await db.execute(
        "INSERT INTO push_messages VALUES (?, ?, ?, ?, ?)",
        ("V", 2**40, None, 1_700_000_000_000, b"id: 1\ndata: {}\n\n"),
    )
    row = await db.fetchone("SELECT id, created_ms, frame FROM push_messages")
    assert row is not None
    assert (row[0], row[1], bytes(row[2])) == (2**40, 1_700_000_000_000, b"id: 1\ndata: {}\n\n")


async def test_a_version_3_file_with_an_old_outbox_upgrades_in_place(tmp_path: Path):
    path = tmp_path / "engagement.sqlite3"
    with sqlite3.connect(path) as old:  # as the engine wrote it before migrations existed
        old.executescript(HISTORY + RECORDS + "ALTER TABLE attempts ADD COLUMN variant TEXT "
                          "NOT NULL DEFAULT '';")  # fmt: skip
        old.execute("INSERT INTO callbacks VALUES ('R1', 'A', 'V', 'cb', '{}', 'queued', 0, 5, "
                    "NULL, NULL, 1, 1)")  # fmt: skip
        old.execute("PRAGMA user_version=3")
    db = await open_database(path)
    try:
        # 3 finds its tables there, 4 adds the claims, and the later ones run as on any file
        assert await migrate(db) == [m.version for m in MIGRATIONS if m.version >= 3]
        row = await db.fetchone(
            "SELECT request_id, state, claimed_by, claimed_until FROM callbacks"
        )
    finally:
        await db.close()
    assert row is not None
    assert tuple(row) == ("R1", "queued", "", 0)


async def test_a_file_older_than_the_oldest_upgrade_is_refused(tmp_path: Path):
    path = tmp_path / "engagement.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(HISTORY)
        old.execute("PRAGMA user_version=1")
    db = await open_database(path)
    try:
        with pytest.raises(OldSchemaError, match=r"older format \(version 1\)"):
            await migrate(db)
    finally:
        await db.close()


def test_queries_are_written_once_and_translated_for_postgresql():
    assert postgres_sql("INSERT OR IGNORE INTO events VALUES (?, ?)") == (
        "INSERT INTO events VALUES ($1, $2) ON CONFLICT DO NOTHING"
    )
    assert postgres_sql("SELECT * FROM t WHERE a = '?' AND b = ? AND c LIKE ? ESCAPE '\\'") == (
        "SELECT * FROM t WHERE a = '?' AND b = $1 AND c LIKE $2 ESCAPE '\\'"
    )
    upsert = postgres_sql(UPSERT_VISIT)
    assert "LEAST(visits.started_at, excluded.started_at)" in upsert
    assert "GREATEST(visits.last_seen_at, excluded.last_seen_at)" in upsert
    assert "$11)" in upsert
    assert "?" not in upsert
    assert postgres_sql("SELECT MIN(next_try_at) FROM callbacks") == (
        "SELECT MIN(next_try_at) FROM callbacks"  # the aggregate stays
    )
    assert postgres_schema("id INTEGER PRIMARY KEY, at INTEGER, v REAL, f BLOB) WITHOUT ROWID") == (
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at BIGINT, v DOUBLE PRECISION, "
        "f BYTEA)"
    )
    with pytest.raises(ValueError, match="ON CONFLICT"):
        postgres_sql("INSERT OR REPLACE INTO t VALUES (?)")

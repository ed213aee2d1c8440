"""Copy the records of a SQLite file into PostgreSQL (``engagement copy-history``).

Both sides are brought to the latest schema first. Rows go over in batches, each inserted with
``ON CONFLICT DO NOTHING``: running the copy again adds only what is new, and rows the target
already has (written by a node since) are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Database, rowcount_of
from .migrations import migrate
from .postgres import PostgresDatabase
from .sqlite import SQLiteDatabase

log = logging.getLogger(__name__)

# Parents before children (nothing enforces it today, but a reader of a half-done copy sees
# visits before their events); tables of later migrations follow in name order.
FIRST = (
    "visits", "pages", "events", "attempts", "conversions", "identities", "identity_visits",
    "push_messages", "audit", "callbacks",
)  # fmt: skip
BATCH_ROWS = 5_000  # rows per INSERT batch: few round trips, bounded memory


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    read: int  # rows in the SQLite file
    added: int  # rows PostgreSQL did not have


async def copy_history(
    source: Path, target: str, progress: Callable[[Copied], None] = lambda c: None
) -> list[Copied]:
    """Copy every table of ``source`` (an existing SQLite file) into ``target`` (a PostgreSQL
    URL)."""
    sqlite = await SQLiteDatabase.open(source)
    try:
        await migrate(sqlite)
        postgres = await PostgresDatabase.open(target)
        try:
            await migrate(postgres)
            done = []
            for table in await _tables(sqlite):
                copied = await _copy_table(sqlite, postgres, table)
                progress(copied)
                done.append(copied)
            await _advance_sequences(postgres)
            return done
        finally:
            await postgres.close()
    finally:
        await sqlite.close()


async def _tables(sqlite: SQLiteDatabase) -> list[str]:
    rows = await sqlite.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_migrations' ORDER BY name"
    )
    found = {str(r[0]) for r in rows}
    return [t for t in FIRST if t in found] + sorted(found - set(FIRST))


async def _copy_table(sqlite: SQLiteDatabase, postgres: PostgresDatabase, table: str) -> Copied:
    info = await sqlite.fetchall(f"SELECT name, pk FROM pragma_table_info('{table}')")
    columns = [str(r["name"]) for r in info]
    keys = [str(r["name"]) for r in sorted(info, key=lambda r: int(r["pk"])) if r["pk"]]
    names, order = ", ".join(columns), ", ".join(keys)
    read = added = 0
    after: tuple[object, ...] = ()
    while True:  # a keyset walk along the primary key: each batch one index range
        where = f"WHERE ({order}) > ({', '.join('?' * len(keys))})" if after else ""
        rows = await sqlite.fetchall(
            f"SELECT {names} FROM {table} {where} ORDER BY {order} LIMIT {BATCH_ROWS}", after
        )
        if not rows:
            break
        async with postgres.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE incoming (LIKE {table}) ON COMMIT DROP")
            await conn.copy_records_to_table(
                "incoming", records=[tuple(r) for r in rows], columns=columns
            )
            status = await conn.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM incoming ON CONFLICT DO NOTHING"
            )
        added += rowcount_of(status)
        read += len(rows)
        after = tuple(rows[-1][k] for k in keys)
    log.info("copied %s: %d rows read, %d added", table, read, added)
    return Copied(table, read, added)


async def _advance_sequences(postgres: Database) -> None:
    """The audit log's ids came over as they were: new entries must number after them."""
    await postgres.execute(
        "SELECT setval(pg_get_serial_sequence('audit', 'id'), "
        "GREATEST((SELECT MAX(id) FROM audit), 1))"
    )

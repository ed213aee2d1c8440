"""One SQLite file, one connection per process: the history and the callback outbox queue
their writes on it instead of on SQLite's file lock (whose busy timeout a loaded machine
passed: an accepted callback answered 500 "database is locked")."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, OUTBOX
from engagement.db.sqlite import WRITER_NICE, SQLiteDatabase


async def test_the_history_and_the_outbox_write_through_one_connection(
    client: TestClient[Any, Any],
):
    assert client.app[OUTBOX].db is client.app[HISTORY].db


async def test_a_write_waits_for_a_long_transaction_of_the_other_user(tmp_path: Path):
    path = tmp_path / "engagement.sqlite3"
    history, outbox = await SQLiteDatabase.open(path), await SQLiteDatabase.open(path)
    try:
        await history.execute("CREATE TABLE t (x INTEGER)")
        await outbox.execute("PRAGMA busy_timeout=50")  # SQLite's own wait would end soon
        held = asyncio.Event()

        async def long_flush() -> None:
            async with history.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                held.set()
                await asyncio.sleep(0.3)  # six times the busy timeout

        flush = asyncio.create_task(long_flush())
        await held.wait()
        await outbox.execute("INSERT INTO t VALUES (2)")  # queued, not "database is locked"
        await flush
        rows = await outbox.fetchall("SELECT x FROM t ORDER BY x")
        assert [r[0] for r in rows] == [1, 2]
    finally:
        await outbox.close()
        assert (await history.fetchone("SELECT 1")) is not None  # still open for its last user
        await history.close()


async def test_the_writer_thread_yields_the_core_to_the_event_loop(tmp_path: Path):
    """On one busy core the loop goes first: the connection's thread runs at a lower priority
    (nice), the loop's thread keeps its own."""
    db = await SQLiteDatabase.open(tmp_path / "engagement.sqlite3")
    try:
        await db.db.create_function("native_id", 0, threading.get_native_id)
        (writer,) = await db.fetchone("SELECT native_id()") or ()  # the connection's thread
        loop_thread = threading.get_native_id()
        assert writer != loop_thread
        base = os.getpriority(os.PRIO_PROCESS, loop_thread)
        assert os.getpriority(os.PRIO_PROCESS, writer) == min(base + WRITER_NICE, 19)
        assert os.getpriority(os.PRIO_PROCESS, loop_thread) == base
    finally:
        await db.close()

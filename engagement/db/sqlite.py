"""The embedded database: one SQLite file, one connection, statements run as written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import ClassVar, cast

import aiosqlite

from .base import Args, Queries, Record, Row, Transaction


class _Connection:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, args: Args = ()) -> int:
        cursor = await self.db.execute(sql, args)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Row]) -> None:
        await self.db.executemany(sql, rows)

    async def fetchall(self, sql: str, args: Args = ()) -> list[Record]:
        async with self.db.execute(sql, args) as cur:
            return cast(list[Record], list(await cur.fetchall()))

    async def fetchone(self, sql: str, args: Args = ()) -> Record | None:
        async with self.db.execute(sql, args) as cur:
            return cast(Record | None, await cur.fetchone())

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        yield  # a failed statement undoes itself alone


# The connection's thread writes behind the hot path: when it and the event loop want one core,
# the loop goes first (its callbacks are what visitors wait for). Linux: a thread's own nice.
WRITER_NICE = 10


def _behind_the_loop() -> int:
    """Lower the scheduling priority of the thread this runs in: a SQL function, so that it
    runs in the connection's own thread (aiosqlite has no public way to name that thread)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    return 0


def _key(path: Path) -> tuple[Path, int]:
    return path.resolve(), id(asyncio.get_running_loop())


class SQLiteDatabase(_Connection):
    dialect = "sqlite"
    skip_locked = ""

    # The file's one connection in this process, per event loop, with its number of users:
    # the history and the callback outbox share it, so their writes queue on ``_writing``
    # instead of on SQLite's file lock, whose busy timeout a slow machine can pass ("database
    # is locked" while the other connection's flush held the lock).
    _shared: ClassVar[dict[tuple[Path, int], SQLiteDatabase]] = {}

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        super().__init__(db)
        self.where = str(path)
        self._writing = asyncio.Lock()  # one transaction at a time on the one connection
        self._users = 1
        self._key = _key(path)

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        """The file's connection: the one already open in this process, or a new one."""
        shared = cls._shared.get(_key(path))
        if shared is not None:
            shared._users += 1
            return shared
        opened = await cls._connect(path)
        cls._shared[opened._key] = opened
        return opened

    @classmethod
    async def _connect(cls, path: Path) -> SQLiteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Fail here if the file cannot be opened: aiosqlite's thread would outlive the loop.
        sqlite3.connect(path).close()
        db = await aiosqlite.connect(path)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")  # the history and the outbox share it
            await db.execute("PRAGMA cache_size=-32768")  # 32 MiB: hot B-tree pages stay
            await db.create_function("engagement_behind_the_loop", 0, _behind_the_loop)
            await db.execute("SELECT engagement_behind_the_loop()")
        except BaseException:
            await db.close()  # its thread would keep the process alive
            raise
        return cls(db, path)

    async def execute(self, sql: str, args: Args = ()) -> int:
        async with self._writing:
            count = await super().execute(sql, args)
            await self.db.commit()
            return count

    async def executemany(self, sql: str, rows: Iterable[Row]) -> None:
        async with self._writing:
            await super().executemany(sql, rows)
            await self.db.commit()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing:
            try:
                yield _Connection(self.db)
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Queries]:
        yield self  # one connection: its reads see one state unless a writer holds it

    async def execute_script(self, script: str) -> None:
        async with self._writing:
            try:
                await self.db.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
            except BaseException:
                if self.db.in_transaction:
                    await self.db.rollback()
                raise

    async def close(self) -> None:
        """Let go of the connection; the last user closes it."""
        self._users -= 1
        if self._users > 0:
            return
        if self._shared.get(self._key) is self:
            del self._shared[self._key]
        await self.db.close()

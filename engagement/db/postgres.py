"""PostgreSQL: a pool of connections; queries written in SQLite's dialect are translated once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import asyncpg

from .base import (
    Args,
    Queries,
    Record,
    Row,
    Transaction,
    describe,
    postgres_schema,
    postgres_sql,
    rowcount_of,
)

POOL_MIN = 1
POOL_MAX = 8  # per store and node: the writer, the outbox, and a few reads at once
CONNECT_TIMEOUT_S = 5.0  # a server that does not answer in that long is down
CLOSE_TIMEOUT_S = 5.0  # then connections are dropped without goodbye
COMMAND_TIMEOUT_S = 30.0  # no statement of ours takes that long; a hung connection would


def _translated(cache: dict[str, str], sql: str) -> str:
    found = cache.get(sql)
    if found is None:
        found = cache[sql] = postgres_sql(sql)
    return found


class _Connection:
    def __init__(self, conn: Any, cache: dict[str, str]) -> None:
        self.conn = conn  # asyncpg.Connection or Pool: the same query methods
        self.cache = cache

    async def execute(self, sql: str, args: Args = ()) -> int:
        status = await self.conn.execute(_translated(self.cache, sql), *args)
        return rowcount_of(str(status))

    async def executemany(self, sql: str, rows: Iterable[Row]) -> None:
        rows = list(rows)
        if rows:
            await self.conn.executemany(_translated(self.cache, sql), rows)

    async def fetchall(self, sql: str, args: Args = ()) -> list[Record]:
        return cast(list[Record], await self.conn.fetch(_translated(self.cache, sql), *args))

    async def fetchone(self, sql: str, args: Args = ()) -> Record | None:
        return cast(Record | None, await self.conn.fetchrow(_translated(self.cache, sql), *args))

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.conn.transaction():  # nested: a savepoint
            yield


class PostgresDatabase(_Connection):
    dialect = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        super().__init__(pool, {})
        self.pool = pool
        self.where = describe(url)

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        pool = await asyncpg.create_pool(
            url,
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
        )
        return cls(pool, url)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _Connection(conn, self.cache)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Queries]:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield _Connection(conn, self.cache)

    async def execute_script(self, script: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(postgres_schema(script))

    async def close(self) -> None:
        try:  # a server that went away would hold a graceful close for ever
            await asyncio.wait_for(self.pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self.pool.terminate()

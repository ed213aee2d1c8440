"""The per-test Redis database and PostgreSQL schema really are private and really are used."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


async def test_each_test_gets_an_empty_redis_database_of_its_own(redis_url: str):
    r = aioredis.Redis.from_url(redis_url)
    try:
        assert await r.dbsize() == 0
        await r.set("k", "v")
        assert await r.get("k") == b"v"
        db = int(redis_url.rsplit("/", 1)[1])
        assert db != 0
    finally:
        await r.aclose()


async def test_each_test_gets_a_postgres_schema_of_its_own(database_url: str):
    conn = await asyncpg.connect(database_url)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        assert schema is not None
        assert schema.startswith("t_")
        await conn.execute("CREATE TABLE probe (x int)")
        assert await conn.fetchval("SELECT count(*) FROM probe") == 0
    finally:
        await conn.close()

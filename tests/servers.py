"""The real Redis and PostgreSQL servers of this machine, one private space per test.

Each test gets its own Redis database (claimed across processes, since several test runs may
share one server) and its own PostgreSQL schema. With ``CI`` set a missing server fails the
test; without it, the test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

REDIS_HOST = os.environ.get("ENGAGEMENT_TEST_REDIS", "redis://127.0.0.1:6379")
POSTGRES = os.environ.get(
    "ENGAGEMENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLAIM_TTL_S = 1800  # a crashed run's claim lapses by itself


def _absent(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc!r})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run these tests against a real server")
    pytest.skip(f"{message}; set CI to make this a failure")


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis URL whose database no other test (in any process) uses until this one ends."""
    admin = aioredis.Redis.from_url(f"{REDIS_HOST}/0")
    claimed: int | None = None
    token = uuid.uuid4().hex
    try:
        try:
            databases = int((await admin.config_get("databases"))["databases"])
        except (OSError, aioredis.ConnectionError) as exc:
            _absent("Redis", exc)
        for _attempt in range(600):
            for db in range(1, databases):
                if await admin.set(f"engagement-test:db:{db}", token, nx=True, ex=CLAIM_TTL_S):
                    claimed = db
                    break
            if claimed is not None:
                break
            await asyncio.sleep(0.1)
        if claimed is None:
            pytest.fail(f"no free Redis database among 1..{databases - 1} after 60 s")
        url = f"{REDIS_HOST}/{claimed}"
        own = aioredis.Redis.from_url(url)
        await own.flushdb()
        try:
            yield url
        finally:
            await own.flushdb()
            await own.aclose()
    finally:
        if (
            claimed is not None
            and await admin.get(f"engagement-test:db:{claimed}") == token.encode()
        ):
            await admin.delete(f"engagement-test:db:{claimed}")
        await admin.aclose()


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        conn = await asyncpg.connect(POSTGRES, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _absent("PostgreSQL", exc)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield f"{POSTGRES}?search_path={schema}"
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

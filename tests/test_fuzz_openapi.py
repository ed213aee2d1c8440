"""Hostile values through every endpoint: schemathesis, with all its checks, generates requests
from the OpenAPI document against the real `engagement serve` (authenticated, and from an
allowed site), finds nothing the document does not say; then a normal visit's events are still
written."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from .conftest import SITE, Factory
from .test_process import DEADLINE_S, KEY, Engine, clean_env, serving

MAX_EXAMPLES = 10  # per operation and phase: enough to reach every handler, fast enough
SEED = 20261201  # the same cases each run; change it to explore
RUN_DEADLINE_S = 300  # a deadline for the run, not a timing assertion
# What the document cannot say, each a 400 for a request it allows: a callback's desired time
# must fall in the next 30 days (the visitor's form shows why); a report's `from` must not be
# after its `until` (two parameters together). A page's push stream never ends: its status and
# headers are checked, and the wait for more is cut short.
CONFIG = """
[[operations]]
include-name = "POST /callbacks"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name-regex = "^GET /api/v1/reports/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name = "GET /notifications/stream"
request-timeout = 0.5
"""  # noqa: E501


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with serving(
        tmp_path, allowed_origins=[SITE], history_flush_interval_s=0.05, shutdown_timeout_s=2
    ) as engine:
        yield engine


async def schemathesis(engine: Engine, *args: str) -> tuple[int, str]:
    """`st run` on the engine's own document; its exit code and report."""
    config = engine.folder / "schemathesis.toml"
    config.write_text(CONFIG)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file", str(config), "run", engine.url("/api/openapi.json"),
        "--checks", "all", "--header", f"X-API-Key: {KEY}", "--header", f"Origin: {SITE}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--request-timeout", "5",
        "--workers", "1", "--no-color", "--output-truncate", "false", *args,
        cwd=engine.folder, env={**clean_env(), "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_DEADLINE_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_hostile_requests_find_nothing_and_a_normal_visit_is_still_written(
    engine: Engine,
):
    code, report = await schemathesis(engine)

    assert code == 0, report
    visitor = Factory()
    async with aiohttp.ClientSession() as session:
        events = [*visitor.start(), visitor.event("AddToCart", {"sku": "WH15", "price": 1199})]
        async with session.post(
            engine.url("/monitoring/events"), json={"events": events}, headers={"Origin": SITE}
        ) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"accepted": 3, "duplicates": 0}
        history = engine.url(f"/server/data/visits/{visitor.visit_id}/events")  # from the store
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while True:  # written behind the answer: wait for the history to have them
            async with session.get(history, headers={"X-API-Key": KEY}) as r:
                assert r.status == 200, await r.text()
                written = [e["eventName"] for e in await r.json()]
            if written or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
    assert written == ["VisitStarted", "PageEntered", "AddToCart"]

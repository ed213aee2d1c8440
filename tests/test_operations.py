"""What operators read: metrics, health, readiness, structured logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from asyncio.subprocess import PIPE
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.app import create_app
from engagement.gcpolicy import FROZEN, FrozenHeap
from engagement.logs import JSONFormatter
from engagement.settings import Settings

from .conftest import Factory, post_events, url

Client = TestClient[Any, Any]


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_count_what_happened(client: Client, factory: Factory):
    events = factory.start()
    await post_events(client, events)
    await post_events(client, events)  # duplicates
    r = await client.get(url(client, "metrics"))
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await r.text()
    assert sample(text, "engagement_events_ingested_total") == 2
    assert sample(text, "engagement_event_duplicates_total") == 2
    assert sample(text, "engagement_live_visits") == 1
    assert sample(text, "engagement_open_streams") == 0
    assert sample(text, "engagement_callback_queue") == 0
    labels = '{method="POST",route="events",status="200"}'
    assert f"engagement_http_request_duration_seconds_count{labels} 2.0" in text


async def test_health_and_readiness(client: Client):
    r = await client.get(url(client, "health"))
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await client.get(url(client, "ready"))
    assert r.status == 200, await r.text()
    assert await r.json() == {
        "status": "ready",
        "checks": {
            "history": "ok",
            "outbox": "ok",
            "historyWrites": "ok",
            "historyQueue": "ok",
            "callbackQueue": "ok",
        },
    }


async def test_readiness_fails_when_the_store_is_gone(client: Client):
    from engagement.api.state import HISTORY, OUTBOX
    from engagement.db.sqlite import SQLiteDatabase

    history = client.app[HISTORY]
    db = history.db
    assert isinstance(db, SQLiteDatabase)
    await db.db.close()  # the file's connection itself (the outbox shares it), not one user's
    r = await client.get(url(client, "ready"))
    assert r.status == 503
    body = await r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["history"].startswith("failed")
    history._db = None  # closed by the test: nothing left to close
    client.app[OUTBOX]._db = None


def test_json_logs_carry_ids(caplog: pytest.LogCaptureFixture):
    record = logging.LogRecord(
        "engagement.x", logging.INFO, __file__, 1, "attempt %s shown", ("A1",), None
    )
    record.visitID = "V1"
    record.attemptID = "A1"
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "attempt A1 shown"
    assert (line["visitID"], line["attemptID"], line["level"]) == ("V1", "A1", "INFO")


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="promtool not installed (Debian package prometheus; .ci/run installs it)",
)


@needs_promtool
async def test_metrics_pass_promtool(client: Client, factory: Factory):
    """A real consumer of /metrics (Prometheus's own linter) accepts what we expose."""
    await post_events(client, factory.start())
    r = await client.get(url(client, "metrics"))
    assert r.status == 200
    body = await r.read()
    await promtool_check(body)


async def promtool_check(body: bytes) -> None:
    assert PROMTOOL is not None, "CI must have promtool (.ci/run installs Debian's prometheus)"
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await proc.communicate(body)
    assert proc.returncode == 0, out.decode() + err.decode()


@needs_promtool
async def test_metrics_tell_what_the_thaws_did(settings: Settings, aiohttp_client: Any):
    """`engagement serve`'s collection policy (engagement/gcpolicy.py) in /metrics."""
    app = create_app(settings)
    app[FROZEN] = FrozenHeap(baseline=1000, thaws=2, collected_total=40, last_pause_s=0.5)
    client = await aiohttp_client(app)
    r = await client.get(url(client, "metrics"))
    body = await r.read()
    text = body.decode()
    assert sample(text, "engagement_gc_thaws_total") == 2
    assert sample(text, "engagement_gc_thaw_garbage_total") == 40
    assert sample(text, "engagement_gc_last_thaw_seconds") == 0.5
    assert sample(text, "engagement_gc_thaw_threshold_blocks") == 1250  # 25 % past the last
    assert sample(text, "engagement_gc_heap_blocks") > 1000
    await promtool_check(body)


async def test_metrics_without_the_serve_policy_say_nothing_of_it(client: Client):
    text = await (await client.get(url(client, "metrics"))).text()
    assert "engagement_gc_" not in text

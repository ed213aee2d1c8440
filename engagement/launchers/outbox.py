"""Callback requests: stored before the visitor gets an answer, then delivered to GMS at least
once (retried with backoff while it is down), effectively once (each carries an idempotency key),
across restarts of the engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

from .. import constants as C

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    request_id TEXT PRIMARY KEY,
    attempt_id TEXT NOT NULL,
    visit_id TEXT NOT NULL,
    service TEXT NOT NULL,
    form TEXT NOT NULL,
    state TEXT NOT NULL,          -- queued, delivered, failed
    tries INTEGER NOT NULL,
    next_try_at INTEGER NOT NULL,
    gms_id TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (state, next_try_at);
"""
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0  # GMS down for long: try once a minute
GIVE_UP_AFTER_S = 86_400  # a callback a day late helps nobody: recorded as failed
IDEMPOTENCY_FIELD = "_engagement_request_id"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Delivery:
    request_id: str
    attempt_id: str
    ok: bool
    gms_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class GMSSettings:
    url: str
    user: str | None = None
    password: str | None = None

    def callback_url(self, service: str) -> str:
        return f"{self.url.rstrip('/')}/genesys/1/service/callback/{service}"

    @property
    def headers(self) -> dict[str, str]:
        if not self.user:
            return {}
        return {"Authorization": aiohttp.encode_basic_auth(self.user, self.password or "")}


class CallbackOutbox:
    def __init__(
        self,
        path: Path,
        gms: GMSSettings,
        session: Callable[[], aiohttp.ClientSession],
        delivered: Callable[[Delivery], None],
        timeout_s: float = C.GMS_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.gms = gms
        self._session = session
        self.delivered = delivered  # GMS answered for good (took it, or refused it)
        self.timeout_s = timeout_s
        self._db: aiosqlite.Connection | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: set[str] = set()  # request IDs being sent to GMS right now
        self.retries_total = 0
        self.queued = 0  # requests not yet delivered nor failed (for metrics)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the callback outbox is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Fail here if the file cannot be opened: aiosqlite's thread would outlive the loop.
        sqlite3.connect(self.path).close()
        self._db = await aiosqlite.connect(self.path)
        try:
            self._db.row_factory = aiosqlite.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.executescript(SCHEMA)
            await self._db.commit()
            self.queued = await self.pending()
        except BaseException:
            await self._db.close()  # its thread would keep the process alive
            self._db = None
            raise
        self._worker = asyncio.create_task(self._work(), name="callback-outbox")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def enqueue(
        self, attempt_id: str, visit_id: str, service: str, form: dict[str, str]
    ) -> str:
        """Store the request durably (committed before this returns) and wake the sender."""
        request_id = uuid.uuid4().hex.upper()
        now = now_ms()
        await self.db.execute(
            "INSERT INTO callbacks VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, NULL, NULL, ?, ?)",
            (request_id, attempt_id, visit_id, service, json.dumps(form), now, now, now),
        )
        await self.db.commit()
        self.queued += 1
        self._wake.set()
        return request_id

    async def pending(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM callbacks WHERE state = 'queued'") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def get(self, request_id: str) -> dict[str, Any] | None:
        async with self.db.execute(
            "SELECT * FROM callbacks WHERE request_id = ?", (request_id,)
        ) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def _work(self) -> None:
        while True:
            try:
                wait_s = await self.deliver_due()
            except Exception:
                log.exception("callback outbox failed; trying again")
                wait_s = RETRY_FIRST_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    async def deliver_due(self, now: int | None = None) -> float:
        """Send every request due at ``now`` (default: now); seconds until the next one is."""
        now = now_ms() if now is None else now
        async with self.db.execute(
            "SELECT * FROM callbacks WHERE state = 'queued' AND next_try_at <= ? "
            "ORDER BY next_try_at LIMIT 50",
            (now,),
        ) as cur:
            rows = await cur.fetchall()
        for row in rows:
            if row["request_id"] in self._in_flight:
                continue  # never twice in flight: the retry waits for the first to end
            self._in_flight.add(row["request_id"])
            try:
                await self._deliver(row)
            finally:
                self._in_flight.discard(row["request_id"])
        async with self.db.execute(
            "SELECT MIN(next_try_at) FROM callbacks WHERE state = 'queued'"
        ) as cur:
            nxt = await cur.fetchone()
        if nxt is None or nxt[0] is None:
            return RETRY_MAX_S
        return max(0.05, (int(nxt[0]) - now_ms()) / 1000)

    async def _deliver(self, row: aiosqlite.Row) -> None:
        request_id = row["request_id"]
        form = {**json.loads(row["form"]), IDEMPOTENCY_FIELD: request_id}
        url = self.gms.callback_url(row["service"])
        error: str
        timed_out = False
        try:
            async with self._session().post(
                url,
                data=form,
                headers={**self.gms.headers, "Idempotency-Key": request_id},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as r:
                text = await r.text()
                if r.status < 300:
                    gms_id = _gms_id(text)
                    await self._finish(row, "delivered", gms_id, None)
                    return
                if 400 <= r.status < 500 and r.status not in (408, 429):
                    await self._finish(
                        row, "failed", None, f"GMS answered {r.status}: {text[:300]}"
                    )
                    return
                error = f"GMS answered {r.status}"
        except TimeoutError:
            error = f"GMS did not answer within {self.timeout_s:g} s (gms_timeout_s)"
            timed_out = True
        except aiohttp.ClientError as exc:
            error = f"GMS unreachable: {exc!r}"
        tries = row["tries"] + 1
        if now_ms() - row["created_at"] > GIVE_UP_AFTER_S * 1000:
            await self._finish(row, "failed", None, f"gave up after {tries} tries: {error}")
            return
        delay_s = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (tries - 1))
        if timed_out:  # a slow GMS may still be working on it: give it that long again
            delay_s = max(delay_s, self.timeout_s)
        self.retries_total += 1
        log.warning(
            "callback %s: %s; try %d in %.0f s",
            request_id,
            error,
            tries + 1,
            delay_s,
            extra={"attemptID": row["attempt_id"], "visitID": row["visit_id"]},
        )
        await self.db.execute(
            "UPDATE callbacks SET tries = ?, next_try_at = ?, error = ?, updated_at = ? "
            "WHERE request_id = ?",
            (tries, now_ms() + int(delay_s * 1000), error, now_ms(), request_id),
        )
        await self.db.commit()

    async def _finish(
        self, row: aiosqlite.Row, state: str, gms_id: str | None, error: str | None
    ) -> None:
        await self.db.execute(
            "UPDATE callbacks SET state = ?, gms_id = ?, error = ?, tries = tries + 1, "
            "updated_at = ? WHERE request_id = ?",
            (state, gms_id, error, now_ms(), row["request_id"]),
        )
        await self.db.commit()
        self.queued = max(0, self.queued - 1)
        delivery = Delivery(
            row["request_id"], row["attempt_id"], state == "delivered", gms_id, error
        )
        log.info(
            "callback %s %s%s",
            row["request_id"],
            state,
            f": {error}" if error else "",
            extra={"attemptID": row["attempt_id"], "visitID": row["visit_id"]},
        )
        self.delivered(delivery)


def _gms_id(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    value = body.get("_id") if isinstance(body, dict) else None
    return str(value) if value is not None else None

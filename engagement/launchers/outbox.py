"""Callback requests: stored before the visitor gets an answer, then delivered to GMS at least
once (retried with backoff while it is down), effectively once (each carries an idempotency key),
across restarts of the engine.

Several nodes may share the outbox (PostgreSQL): a node claims one request at a time for a lease
(``FOR UPDATE SKIP LOCKED``: the others pass over it), so each request is sent by one node; a
node killed while sending lets its claim lapse and another node sends it again, with the same
idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .. import constants as C
from ..db.base import Database, Record
from ..db.connect import open_database
from ..db.migrations import migrate

log = logging.getLogger(__name__)

# Rows due now that no live claim holds; the claim is taken in the same statement.
CLAIM = """
UPDATE callbacks SET claimed_by = ?, claimed_until = ?
WHERE request_id IN (
    SELECT request_id FROM callbacks
    WHERE state = 'queued' AND next_try_at <= ? AND claimed_until <= ?
    ORDER BY next_try_at LIMIT 1{skip_locked}
)
RETURNING *
"""
CLAIM_MARGIN_S = 30.0  # a claim outlives one GMS request (gms_timeout_s) by this much
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0  # GMS down for long: try once a minute
# A database shared by several nodes: look at the queue this often even with nothing of this
# node's due, since a node killed after storing a request (or during its backoff) never wakes
# the others; one small query per node and period.
SHARED_POLL_S = 2.0
GIVE_UP_AFTER_S = C.CALLBACK_GIVE_UP_S
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
    visit_id: str = ""


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
        location: Path | str,
        gms: GMSSettings,
        session: Callable[[], aiohttp.ClientSession],
        delivered: Callable[[Delivery], None],
        timeout_s: float = C.GMS_TIMEOUT_S,
    ) -> None:
        self.location = location  # a SQLite file or a postgresql:// URL
        self.node = uuid.uuid4().hex  # this process, in the claims it takes
        self.gms = gms
        self._session = session
        self.delivered = delivered  # GMS answered for good (took it, or refused it)
        self.timeout_s = timeout_s
        self._db: Database | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._in_flight: set[str] = set()  # request IDs being sent to GMS right now
        self.retries_total = 0
        self.queued = 0  # requests not yet delivered nor failed (for metrics)

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the callback outbox is not open")
        return self._db

    async def open(self) -> None:
        db = await open_database(self.location)
        try:
            await migrate(db)
            self._db = db
            self.queued = await self.pending()
        except BaseException:
            await db.close()  # a SQLite thread would keep the process alive
            self._db = None
            raise
        self._worker = asyncio.create_task(self._work(), name="callback-outbox")

    async def close(self) -> None:
        if self._worker is not None:
            self._closing = True  # the loop ends on it even if wait_for swallows the cancel
            self._wake.set()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._db is not None:
            try:  # what this node was sending goes back to the queue at once
                await self._db.execute(
                    "UPDATE callbacks SET claimed_until = 0 WHERE claimed_by = ? "
                    "AND state = 'queued'",
                    (self.node,),
                )
            except Exception as exc:
                log.warning("callback claims not released (they lapse by themselves): %r", exc)
            finally:
                await self._db.close()
                self._db = None

    async def enqueue(
        self, attempt_id: str, visit_id: str, service: str, form: dict[str, str]
    ) -> str:
        """Store the request durably (committed before this returns) and wake the sender."""
        request_id = uuid.uuid4().hex.upper()
        now = now_ms()
        await self.db.execute(
            "INSERT INTO callbacks VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, NULL, NULL, ?, ?, '', 0)",
            (request_id, attempt_id, visit_id, service, json.dumps(form), now, now, now),
        )
        self.queued += 1
        self._wake.set()
        return request_id

    async def pending(self) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM callbacks WHERE state = 'queued'")
        return int(row[0]) if row else 0

    async def get(self, request_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchone("SELECT * FROM callbacks WHERE request_id = ?", (request_id,))
        return dict(row) if row else None

    async def _work(self) -> None:
        while not self._closing:
            try:
                wait_s = await self.deliver_due()
            except Exception:
                log.exception("callback outbox failed; trying again")
                wait_s = RETRY_FIRST_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    async def deliver_due(self, now: int | None = None) -> float:
        """Send every request due at ``now`` (default: now) that no node is sending; seconds
        until the next one is due."""
        now = now_ms() if now is None else now
        while row := await self._claim(now):
            if row["request_id"] in self._in_flight:
                continue  # never twice in flight: the retry waits for the first to end
            self._in_flight.add(row["request_id"])
            try:
                await self._deliver(row)
            finally:
                self._in_flight.discard(row["request_id"])
        longest = SHARED_POLL_S if self.db.dialect == "postgresql" else RETRY_MAX_S
        nxt = await self.db.fetchone(
            "SELECT MIN(MAX(next_try_at, claimed_until)) FROM callbacks WHERE state = 'queued'"
        )
        if nxt is None or nxt[0] is None:
            return longest
        return min(longest, max(0.05, (int(nxt[0]) - now_ms()) / 1000))

    async def _claim(self, due_at: int) -> Record | None:
        """One request due at ``due_at`` that no live claim holds, now claimed by this node
        (claims are in real time, whatever ``due_at`` says)."""
        now = now_ms()
        until = now + int((self.timeout_s + CLAIM_MARGIN_S) * 1000)
        sql = CLAIM.format(skip_locked=self.db.skip_locked)
        async with self.db.transaction() as tx:
            return await tx.fetchone(sql, (self.node, until, due_at, now))

    async def _deliver(self, row: Record) -> None:
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
        await self.db.execute(
            "UPDATE callbacks SET tries = ?, next_try_at = ?, error = ?, updated_at = ?, "
            "claimed_until = 0 WHERE request_id = ? AND claimed_by = ?",
            (tries, now_ms() + int(delay_s * 1000), error, now_ms(), request_id, self.node),
        )
        # Told once the claim is given back: any node may take the request from then on.
        self.retries_total += 1
        log.warning(
            "callback %s: %s; try %d in %.0f s",
            request_id,
            error,
            tries + 1,
            delay_s,
            extra={"attemptID": row["attempt_id"], "visitID": row["visit_id"]},
        )

    async def _finish(self, row: Record, state: str, gms_id: str | None, error: str | None) -> None:
        changed = await self.db.execute(
            "UPDATE callbacks SET state = ?, gms_id = ?, error = ?, tries = tries + 1, "
            "updated_at = ?, claimed_until = 0 WHERE request_id = ? AND state = 'queued'",
            (state, gms_id, error, now_ms(), row["request_id"]),
        )
        if not changed:  # another node finished it after this one's claim lapsed
            log.warning("callback %s was already %s elsewhere", row["request_id"], state)
            return
        self.queued = max(0, self.queued - 1)
        delivery = Delivery(
            row["request_id"], row["attempt_id"], state == "delivered", gms_id, error,
            row["visit_id"],
        )  # fmt: skip
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

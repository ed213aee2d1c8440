"""Push messages written with the history, so that a restarted engine still replays what a
page missed while it reconnected (a history ``RowSource``)."""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import constants as C
from ..db.base import Queries
from .hub import Message

log = logging.getLogger(__name__)

INSERT = """
INSERT INTO push_messages VALUES (?, ?, ?, ?, ?) ON CONFLICT (visit_id, id) DO UPDATE SET
    page_id = excluded.page_id, created_ms = excluded.created_ms, frame = excluded.frame
"""
EXPIRE = "DELETE FROM push_messages WHERE created_ms < ?"
EXPIRE_EVERY_MS = 10_000  # past the TTL no page asks for a message again: delete in bulk

Row = tuple[Any, ...]
Batch = list[tuple[str, list[Row]]]


class MessageJournal:
    """Queues every published message (no I/O); the history writes them in its batches and
    deletes those past the push TTL."""

    purge: tuple[str, ...] = (EXPIRE,)  # the retention purge: long expired anyway

    def __init__(self, ttl_s: float = C.PUSH_MESSAGE_TTL_S) -> None:
        self.ttl_ms = int(ttl_s * 1000)
        self._rows: list[Row] = []
        self._expired_at = 0

    @property
    def pending(self) -> int:
        return len(self._rows)

    def record(self, visit_id: str, message: Message) -> None:
        self._rows.append(
            (visit_id, message.id, message.page_id, message.created_ms, message.frame)
        )

    def take(self) -> Batch:
        rows, self._rows = self._rows, []
        if not rows:
            return []
        batch: Batch = [(INSERT, rows)]
        newest = rows[-1][3]
        if newest - self._expired_at >= EXPIRE_EVERY_MS:
            self._expired_at = newest
            batch.append((EXPIRE, [(newest - self.ttl_ms,)]))
        return batch

    def put_back(self, batch: Batch) -> None:
        for statement, rows in batch:
            if statement == INSERT:
                self._rows = rows + self._rows


async def recent_messages(db: Queries, since_ms: int) -> list[tuple[str, Message]]:
    """Messages created since ``since_ms``, per visit in id order (a frame that cannot be
    read is left out with a log line)."""
    query = (
        "SELECT visit_id, id, page_id, created_ms, frame FROM push_messages "
        "WHERE created_ms >= ? ORDER BY visit_id, id"
    )
    found = []
    rows = await db.fetchall(query, (since_ms,))
    for visit_id, message_id, page_id, created_ms, frame in rows:
        try:
            payload = json.loads(bytes(frame).split(b"data: ", 1)[1])
            message = Message(
                message_id, page_id, payload["channel"], payload["data"], created_ms,
                bytes(frame),
            )  # fmt: skip
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            log.error("push message %s/%s cannot be read: %r", visit_id, message_id, exc)
            continue
        found.append((visit_id, message))
    return found

"""Widgets' asynchronous chat session, kept with the visitor on the engine instead of in a
cookie (the seed's "store in a secured location like a database"), so that a chat started on
one of the company's domains resumes on another.

A session is bound to the visitor by a key only their browser holds: the tracker makes it
(32 random hex characters, kept in its own storage, never sent with events), the first save
stores its SHA-256, and later reads and writes must show the same key. A linked domain gets the
key through the single-use link token (``privacy.links``), never through a URL.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from ..db.base import Database, Record

# The first key stays: a later save with another key is refused before it gets here.
UPSERT = """
INSERT INTO chat_sessions VALUES (?, ?, ?, ?, ?)
ON CONFLICT (global_visit_id) DO UPDATE SET
    visit_id = excluded.visit_id, data = excluded.data, updated_at = excluded.updated_at
"""
SELECT = "SELECT key_hash, data FROM chat_sessions WHERE global_visit_id = ?"
DELETE = "DELETE FROM chat_sessions WHERE global_visit_id = ?"

Row = tuple[Any, ...]
Batch = list[tuple[str, list[Row]]]


class Store(Protocol):
    """The history store, whose database holds the sessions."""

    @property
    def db(self) -> Database: ...


class WrongKey(Exception):
    """The key shown is not the one the session was saved with."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check(row: Record | None, gvid: str, key: str) -> None:
    if row is not None and not hmac.compare_digest(str(row[0]), key_hash(key)):
        raise WrongKey(gvid)


class ChatSessions:
    """Chat session data per visitor (globalVisitID), written at once (a page may leave right
    after saving); a history ``RowSource`` for the retention purge (the table is in
    engagement/db/migrations.py)."""

    purge: tuple[str, ...] = ("DELETE FROM chat_sessions WHERE updated_at < ?",)
    pending = 0

    def __init__(self, store: Store) -> None:
        self.store = store

    def take(self) -> Batch:
        return []

    def put_back(self, batch: Batch) -> None:
        return None

    async def save(self, gvid: str, visit_id: str, key: str, data: str | None, now: int) -> None:
        """Keep ``data`` (JSON text) for the visitor; None deletes the session."""
        async with self.store.db.transaction() as tx:
            _check(await tx.fetchone(SELECT, (gvid,)), gvid, key)
            if data is None:
                await tx.execute(DELETE, (gvid,))
            else:
                await tx.execute(UPSERT, (gvid, visit_id, key_hash(key), data, now))

    async def load(self, gvid: str, key: str) -> str | None:
        """The visitor's session data (JSON text), or None."""
        row = await self.store.db.fetchone(SELECT, (gvid,))
        _check(row, gvid, key)
        return None if row is None else str(row[1])

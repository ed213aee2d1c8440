"""The audit log: who changed what, when, from where (a history ``RowSource``).

Actions through the REST API and the console are queued here (no I/O on the request's path),
written with the history's next batch, and logged at once. Tracker events are not audited.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from .db.base import Queries
from .roles import Principal

log = logging.getLogger(__name__)

INSERT = (
    "INSERT INTO audit (at_ms, who, role, action, target, status, client) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
EXPIRE = "DELETE FROM audit WHERE at_ms < ?"  # kept as long as the visit history

Row = tuple[Any, ...]
Batch = list[tuple[str, list[Row]]]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at_ms: int
    who: Principal
    action: str  # the route's name (e.g. "console-invite", "availability-group")
    target: dict[str, str]  # the path's parts (visitID, group...)
    status: int  # what the engine answered: 2xx done, 403 refused...
    client: str  # the caller's address
    id: int = field(default=0)  # set when read back


class AuditLog:
    """Queues audit entries; the history writes them in its batches."""

    purge: tuple[str, ...] = (EXPIRE,)

    def __init__(self) -> None:
        self._rows: list[Row] = []

    @property
    def pending(self) -> int:
        return len(self._rows)

    def record(self, entry: AuditEntry) -> None:
        target = orjson.dumps(entry.target, option=orjson.OPT_SORT_KEYS).decode()  # every notify
        log.info(
            "audit: %s (%s) %s %s -> %d from %s",
            entry.who.name, entry.who.role.value, entry.action, target, entry.status,
            entry.client,
        )  # fmt: skip
        self._rows.append(
            (entry.at_ms, entry.who.name, entry.who.role.value, entry.action, target,
             entry.status, entry.client)
        )  # fmt: skip

    def take(self) -> Batch:
        rows, self._rows = self._rows, []
        return [(INSERT, rows)] if rows else []

    def put_back(self, batch: Batch) -> None:
        for statement, rows in batch:
            if statement == INSERT:
                self._rows = rows + self._rows


async def read_audit(db: Queries, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """The newest entries first, ``limit`` of them, older than ``before_id`` if given."""
    query = "SELECT id, at_ms, who, role, action, target, status, client FROM audit"
    params: tuple[int, ...] = (limit,)
    if before_id is not None:
        query += " WHERE id < ?"
        params = (before_id, limit)
    query += " ORDER BY id DESC LIMIT ?"
    rows = await db.fetchall(query, params)
    entries = []
    for r in rows:
        try:
            target = json.loads(r[5])
        except ValueError:
            target = {}
        entries.append(
            {"id": r[0], "at": r[1], "who": r[2], "role": r[3], "action": r[4],
             "target": target, "status": r[6], "client": r[7]}
        )  # fmt: skip
    return entries

"""Finding past visits in the history store: by visitID, globalVisitID, identity and date,
newest first, one page at a time (a keyset cursor: no request reads the whole history)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .store import History, visit_json

Cursor = tuple[int, str]  # (started_at, visit_id) of the last visit of a page


@dataclass(frozen=True, slots=True)
class VisitQuery:
    """What to look for; ``None`` means any."""

    visit_id: str | None = None
    global_visit_id: str | None = None
    identity: str | None = None  # an identity ID (customerID, e-mail...) or text of user info
    since_ms: int | None = None
    until_ms: int | None = None  # exclusive


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_visits(
    history: History, query: VisitQuery, after: Cursor | None, limit: int
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Visits matching ``query``, newest first, after ``after``; the cursor of the next page."""
    await history.catch_up()
    where: list[str] = []
    args: list[Any] = []
    if query.visit_id is not None:
        where.append("v.visit_id = ?")
        args.append(query.visit_id)
    if query.global_visit_id is not None:
        where.append("v.global_visit_id = ?")
        args.append(query.global_visit_id)
    if query.identity is not None:
        where.append(
            "(v.visit_id IN (SELECT visit_id FROM identity_visits WHERE identity_id = ?)"
            " OR v.user_info LIKE ? ESCAPE '\\')"
        )
        args.extend([query.identity, _like(query.identity)])
    if query.since_ms is not None:
        where.append("v.started_at >= ?")
        args.append(query.since_ms)
    if query.until_ms is not None:
        where.append("v.started_at < ?")
        args.append(query.until_ms)
    if after is not None:
        where.append("(v.started_at, v.visit_id) < (?, ?)")
        args.extend(after)
    sql = f"""
        SELECT v.*, (SELECT COUNT(*) FROM pages p WHERE p.visit_id = v.visit_id) AS n_pages
        FROM visits v {"WHERE " + " AND ".join(where) if where else ""}
        ORDER BY v.started_at DESC, v.visit_id DESC LIMIT ?
    """
    rows = await history.db.fetchall(sql, [*args, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    visits = history.read_rows(
        "visits", lambda r: {**visit_json(r), "pagesViewed": r["n_pages"]}, rows
    )
    return visits, (rows[-1]["started_at"], rows[-1]["visit_id"]) if more else None

"""History read in GWE's resource shapes (visits, pages, events, identities), page by page.

Every list is read with a keyset cursor and a LIMIT, so no request holds a whole history: events
by their arrival order (``seq``), an identity's visits newest first by (start, visitID).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..db.base import Record
from .store import History

JSON = dict[str, Any]
ALL_CATEGORIES = "all categories"  # GWE: any event that carries at least one category


@dataclass(frozen=True, slots=True)
class EventFilters:
    """GWE's event filters; ``None`` means not filtered."""

    since_ms: int | None = None  # from `age`
    event_name: str | None = None
    event_type: str | None = None
    category: str | None = None
    url: str | None = None
    browser_page_id: str | None = None
    global_visit_id: str | None = None


@dataclass(frozen=True, slots=True)
class VisitFilters:
    since_ms: int | None = None
    global_visit_id: str | None = None
    user_agent: str | None = None


def user_agent_id(user_agent: str) -> str | None:
    """GWE gave each user agent an ID; the same browser build gets the same one here."""
    if not user_agent:
        return None
    return hashlib.sha256(user_agent.encode()).hexdigest()[:32].upper()


def _visit(r: Record) -> JSON:
    return {
        "visitId": r["visit_id"],
        "startDate": r["started_at"],
        "endDate": r["closed_at"] or 0,
        "globalVisitID": r["global_visit_id"],
        "userAgentID": user_agent_id(r["user_agent"]),
        "userAgent": r["user_agent"],
        "languageCode": r["language_code"],
        "timezoneOffset": r["timezone_offset"],
        "pageIds": None,
        "pages": None,
        "eventIds": None,
        "events": None,
    }


def _page(r: Record) -> JSON:
    return {
        "pageId": r["page_id"],
        "browserPageID": r["page_id"],
        "visitId": r["visit_id"],
        "url": r["url"],
        "title": r["title"],
        "referrer": r["referrer"],
        "utm": json.loads(r["utm"]),
        "startDate": r["entered_at"],
        "endDate": r["exited_at"] or 0,
        "focusedMs": r["focused_ms"],
    }


def _event(r: Record) -> JSON:
    return {
        "eventID": r["event_id"],
        "category": r["category"],
        "eventType": r["event_type"],
        "eventName": r["event_name"],
        "serverTimestamp": r["server_time"],
        "browserPageID": r["page_id"],
        "globalVisitID": r["global_visit_id"],
        "url": r["url"],
        "timestamp": r["timestamp"],
        "visitID": r["visit_id"],
        "pageID": r["page_id"],
        "languageCode": r["language_code"],
        "data": json.loads(r["data"]),
    }


def _identity(r: Record) -> JSON:
    return {
        "identityId": r["identity_id"],
        "name": r["name"],
        "location": r["location"],
        "entityInCS": r["entity_in_cs"],
        "visitScope": r["visit_scope"],
        "attributes": json.loads(r["attributes"]),
        "createdDate": r["created_at"],
        "updatedDate": r["updated_at"],
    }


def _event_filters(f: EventFilters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("e.event_name", f.event_name),
        ("e.event_type", f.event_type),
        ("e.url", f.url),
        ("e.page_id", f.browser_page_id),
        ("e.global_visit_id", f.global_visit_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.since_ms is not None:
        where.append("e.server_time >= ?")
        args.append(f.since_ms)
    if f.category == ALL_CATEGORIES:
        where.append("e.category != ''")
    elif f.category is not None:  # categories are stored `a;b;c`
        where.append("instr(';' || lower(e.category) || ';', ?) > 0")
        args.append(f";{f.category.lower()};")
    return where, args


# Which events a request is about: the events of a visit, of a page, of an identity's visits.
# A page's events are found through its visit: an index of events by page would make every
# event write dearer (bench/history_reads.py), pages are few.
SCOPES = {
    "visit": "e.visit_id = ?",
    "page": "e.visit_id = (SELECT visit_id FROM pages WHERE page_id = ? LIMIT 1) AND e.page_id = ?",
    "identity": "e.visit_id IN (SELECT visit_id FROM identity_visits WHERE identity_id = ?)",
}


class GweHistory:
    """Reads over the history store, in GWE's field names."""

    def __init__(self, history: History) -> None:
        self.history = history

    async def _all(self, sql: str, args: list[Any] | tuple[Any, ...]) -> list[Record]:
        return await self.history.db.fetchall(sql, args)

    async def visit(self, visit_id: str, pages: int = 0, events: int = 0) -> JSON | None:
        """One visit; with its first ``pages`` pages and ``events`` events when asked."""
        await self.history.catch_up()
        rows = await self._all("SELECT * FROM visits WHERE visit_id = ?", (visit_id,))
        if not rows:
            return None
        found = self.history.read_rows("visits", _visit, rows)
        return await self.embed(found[0], pages, events) if found else None

    async def embed(self, visit: JSON, pages: int, events: int) -> JSON:
        """Add a visit's first ``pages`` pages and ``events`` events (and their IDs)."""
        visit_id = visit["visitId"]
        if pages:
            sql = "SELECT * FROM pages WHERE visit_id = ? ORDER BY entered_at, seq LIMIT ?"
            visit["pages"] = self.history.read_rows(
                "pages", _page, await self._all(sql, (visit_id, pages))
            )
            visit["pageIds"] = [p["pageId"] for p in visit["pages"]]
        if events:
            found, _ = await self.events("visit", visit_id, EventFilters(), None, events)
            visit["events"] = found
            visit["eventIds"] = [e["eventID"] for e in found]
        return visit

    async def events(
        self, scope: str, key: str, filters: EventFilters, after: int | None, limit: int
    ) -> tuple[list[JSON], int | None]:
        """A page of events in arrival order, and the cursor of the next page (None: last)."""
        await self.history.catch_up()
        where, args = _event_filters(filters)
        scope_sql = SCOPES[scope]
        where.insert(0, scope_sql)
        args[0:0] = [key] * scope_sql.count("?")
        if after is not None:
            where.append("e.seq > ?")
            args.append(after)
        sql = f"SELECT * FROM events e WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT ?"
        rows = await self._all(sql, [*args, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        events = self.history.read_rows("events", _event, rows)
        return events, rows[-1]["seq"] if more else None

    async def identity(self, identity_id: str) -> JSON | None:
        await self.history.catch_up()
        rows = await self._all("SELECT * FROM identities WHERE identity_id = ?", (identity_id,))
        found = self.history.read_rows("identities", _identity, rows)
        return found[0] if found else None

    async def identity_visits(
        self,
        identity_id: str,
        filters: VisitFilters,
        after: tuple[int, str] | None,
        limit: int,
    ) -> tuple[list[JSON], tuple[int, str] | None]:
        """An identity's visits, newest first, across browsers and devices."""
        await self.history.catch_up()
        where = ["iv.identity_id = ?"]
        args: list[Any] = [identity_id]
        if filters.since_ms is not None:
            where.append("v.started_at >= ?")
            args.append(filters.since_ms)
        if filters.global_visit_id is not None:
            where.append("v.global_visit_id = ?")
            args.append(filters.global_visit_id)
        if filters.user_agent is not None:
            where.append("v.user_agent = ?")
            args.append(filters.user_agent)
        if after is not None:
            where.append("(v.started_at, v.visit_id) < (?, ?)")
            args.extend(after)
        sql = f"""
            SELECT v.*, iv.visit_scope FROM identity_visits iv
            JOIN visits v ON v.visit_id = iv.visit_id
            WHERE {" AND ".join(where)}
            ORDER BY v.started_at DESC, v.visit_id DESC LIMIT ?
        """
        rows = await self._all(sql, [*args, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        visits = self.history.read_rows(
            "visits", lambda r: {**_visit(r), "visitScope": r["visit_scope"]}, rows
        )
        last = (rows[-1]["started_at"], rows[-1]["visit_id"]) if more else None
        return visits, last

    async def identities_of_visit(self, visit_id: str) -> list[JSON]:
        """The identities a visit signed in (or was recognized) as, with this visit's scope."""
        await self.history.flush()
        sql = """
            SELECT i.*, iv.visit_scope AS scope FROM identity_visits iv
            JOIN identities i ON i.identity_id = iv.identity_id
            WHERE iv.visit_id = ? ORDER BY i.identity_id LIMIT 10
        """
        rows = await self._all(sql, (visit_id,))
        return [{**_identity(r), "visitScope": r["scope"]} for r in rows]

"""History reads for agents' tools: one visit, the live visits, a visitor's past visits."""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .. import constants as C
from ..attempts import State
from ..monitoring.ingest import now_ms
from ..visits.live import LiveFilter, live_page, summary
from ..visits.model import Visit
from .errors import InvalidInput, NotFound
from .parsing import parse_query
from .state import HISTORY, REGISTRY

_ID = re.compile(C.ID_PATTERN)
ENGAGEMENT_FILTER = "^(none|live|" + "|".join(s.value for s in State) + ")$"


class PageOut(BaseModel):
    pageID: str
    url: str
    title: str
    referrer: str
    utm: dict[str, str]
    enteredAt: int = Field(description="engine clock, epoch ms")
    exitedAt: int | None
    focusedMs: int = Field(description="time the page had focus, ms")


class EventOut(BaseModel):
    eventType: str
    eventName: str
    eventID: str
    pageID: str
    visitID: str
    globalVisitID: str
    timestamp: int = Field(description="browser clock, epoch ms")
    serverTime: int = Field(description="engine clock, epoch ms")
    url: str
    category: str
    languageCode: str
    data: dict[str, Any]


class TransitionOut(BaseModel):
    state: str
    at: int
    reason: str


class AttemptOut(BaseModel):
    attemptID: str
    visitID: str
    globalVisitID: str
    pageID: str
    strategy: str
    origin: str = Field(description="strategy | agent | external")
    invite: str
    media: str
    params: dict[str, Any]
    timeoutS: float
    createdAt: int
    state: str = Field(description="detected, offered, shown, accepted, declined, timed_out...")
    transitions: list[TransitionOut]
    handoff: dict[str, Any] = Field(description="what the media side answered (GMS _id...)")
    variant: str = Field(description="experiment arm: holdout, a variant's name, or empty")


class HeldBackOut(BaseModel):
    at: int
    strategy: str
    reason: str = Field(description="strict mode, a limit (per_visit, cool-downs...)")


class VisitOut(BaseModel):
    visitID: str
    globalVisitID: str
    identity: str = Field(description="anonymous | recognized | authenticated")
    userInfo: dict[str, Any]
    returning: bool
    startedAt: int
    lastSeenAt: int
    closedAt: int | None
    userAgent: str
    languageCode: str
    timezoneOffset: int | None
    live: bool
    pages: list[PageOut]
    events: list[EventOut]
    attempts: list[AttemptOut]
    heldBack: list[HeldBackOut] = Field(
        description="live visits: strategies that matched but were held back (the last few)"
    )


class LivePageOut(PageOut):
    focused: bool
    timeOnPageS: float


class LiveVisitOut(BaseModel):
    visitID: str
    globalVisitID: str
    identity: str
    returning: bool
    startedAt: int
    lastSeenAt: int
    timeOnSiteS: float
    pagesViewed: int
    currentPage: LivePageOut | None
    version: int = Field(description="the visit's latest change (grows with every change)")
    categories: dict[str, int] = Field(description="pages seen per category")
    engagement: str | None = Field(description="state of the latest engagement attempt")
    engagementStrategy: str | None


class LiveVisitsOut(BaseModel):
    count: int = Field(description="visits live now, in all")
    visits: list[LiveVisitOut]
    nextCursor: int | None = Field(description="pass as `cursor` for the next page; null: no more")


class LiveQuery(BaseModel):
    """Paging and filters of the live-visit listing (most recently changed first)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    cursor: int | None = Field(None, ge=1, le=C.MAX_SAFE_INTEGER, description="nextCursor")
    page: str | None = Field(None, min_length=1, max_length=C.MAX_URL_CHARS,
                             description="part of the current page's URL")  # fmt: skip
    category: str | None = Field(None, min_length=1, max_length=200)
    identity: Literal["anonymous", "recognized", "authenticated"] | None = None
    engagement: str | None = Field(
        None,
        pattern=ENGAGEMENT_FILTER,
        description="none (never invited), live (an attempt live now), or the latest "
        "attempt's state (offered, shown, accepted, declined...)",
    )


class PastVisitOut(BaseModel):
    visitID: str
    globalVisitID: str
    identity: str
    userInfo: dict[str, Any]
    returning: bool
    startedAt: int
    lastSeenAt: int
    closedAt: int | None
    userAgent: str
    languageCode: str
    timezoneOffset: int | None
    pagesViewed: int


class VisitorVisitsOut(BaseModel):
    globalVisitID: str
    visits: list[PastVisitOut]


class VisitorQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)


def _id_param(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise InvalidInput(
            f"{name} {value!r} is not an ID: expected 32 upper-case hex characters",
            details=[{"field": name, "message": "expected 32 upper-case hex characters"}],
        )
    return value


async def get_visit(request: web.Request) -> web.StreamResponse:
    """One visit with its pages and events, live or closed."""
    visit_id = _id_param(request, "visitID")
    visit = await request.app[HISTORY].get_visit(visit_id)
    if visit is None:
        raise NotFound(f"no visit {visit_id}", details=[{"field": "visitID", "message": "unknown"}])
    live = request.app[REGISTRY].get(visit_id)
    visit["live"] = live is not None
    visit["heldBack"] = held_back_json(live)
    return web.json_response(visit)


def held_back_json(visit: Visit | None) -> list[dict[str, Any]]:
    """Why strategies that matched this live visit did not invite it (one shape, API and
    console)."""
    held = visit.held_back if visit is not None else None
    return [{"at": at, "strategy": s, "reason": why} for at, s, why in held or []]


async def get_live_visits(request: web.Request) -> web.StreamResponse:
    """The visits live now, most recently changed first, a page at a time, filtered."""
    query = parse_query(request, LiveQuery)
    registry = request.app[REGISTRY]
    live_filter = LiveFilter(query.page, query.category, query.identity, query.engagement)
    found = live_page(registry, live_filter, query.limit, query.cursor)
    now = now_ms()
    return web.json_response(
        {
            "count": len(registry),
            "visits": [summary(v, now) for v in found.visits],
            "nextCursor": found.next_cursor,
        }
    )


async def get_visitor_visits(request: web.Request) -> web.StreamResponse:
    """A visitor's visits (by globalVisitID), newest first."""
    global_visit_id = _id_param(request, "globalVisitID")
    query = parse_query(request, VisitorQuery)
    visits = await request.app[HISTORY].visits_of_visitor(global_visit_id, query.limit)
    return web.json_response({"globalVisitID": global_visit_id, "visits": visits})

"""GWE's History REST API under /server/data/: visits, events, identities, in GWE's shapes.

Lists are paged: ``page_size`` items, and when more follow, a ``Paging-Next`` header holding the
token to pass back as ``page_start`` (GWE's paging) plus a ``Link: <...>; rel="next"`` URL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from .. import constants as C
from ..monitoring.ingest import now_ms
from ..visits.gwe_reads import EventFilters, VisitFilters
from .errors import InvalidInput, NotFound
from .parsing import parse_query
from .state import GWE_HISTORY

_ID = re.compile(C.ID_PATTERN)
ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]
PAGE_SIZE_DEFAULT = 100  # events or visits per answer when page_size is not given
PAGE_SIZE_MAX = 1000  # an agent desktop's page; keeps every answer small
EMBEDDED_MAX = 500  # pages or events embedded in one visit (include_*); the rest: /events
EMBEDDING_PAGE_SIZE_MAX = 20  # visits per answer when each embeds its pages or events
IDENTITY_ID_MAX_CHARS = 200
MAX_AGE_S = 10 * 366 * 86_400  # far beyond any retention


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Includes(_Query):
    # GWE: "You can only use this parameter if include_pages is set to true": without its
    # list, a detail flag has no effect (a query the OpenAPI document allows is answered).
    include_pages: bool = False
    include_pages_detail: bool = Field(False, description="with include_pages: pages in full")
    include_events: bool = False
    include_events_detail: bool = Field(False, description="with include_events: in full")

    def embedded(self) -> tuple[int, int]:
        return (EMBEDDED_MAX if self.include_pages else 0,
                EMBEDDED_MAX if self.include_events else 0)  # fmt: skip


class VisitQuery(_Includes):
    pass


class EventsQuery(_Query):
    age: int | None = Field(None, ge=0, le=MAX_AGE_S, description="at most this old, s")
    eventName: str | None = Field(None, min_length=1, max_length=100)
    eventType: Literal["SYSTEM", "BUSINESS"] | None = None
    category: str | None = Field(
        None, min_length=1, max_length=100, description="a category, or 'all categories'"
    )
    url: str | None = Field(None, max_length=4096)
    browserPageID: ID | None = None
    globalVisitID: ID | None = None
    page_size: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)
    page_start: int | None = Field(
        None, ge=0, le=C.MAX_SAFE_INTEGER, description="the previous Paging-Next token"
    )

    def filters(self) -> EventFilters:
        return EventFilters(
            since_ms=None if self.age is None else now_ms() - self.age * 1000,
            event_name=self.eventName,
            event_type=self.eventType,
            category=self.category,
            url=self.url,
            browser_page_id=self.browserPageID,
            global_visit_id=self.globalVisitID,
        )


VISITS_TOKEN = r"^\d{1,15}-[0-9A-F]{32}$"


class IdentityVisitsQuery(_Includes):
    age: int | None = Field(None, ge=0, le=MAX_AGE_S, description="started at most this ago, s")
    globalVisitID: ID | None = None
    userAgent: str | None = Field(None, max_length=1000)
    page_size: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)
    page_start: Annotated[str, StringConstraints(pattern=VISITS_TOKEN)] | None = Field(
        None, description="the previous Paging-Next token"
    )


class GwePage(BaseModel):
    pageId: str
    browserPageID: str
    visitId: str
    url: str
    title: str
    referrer: str
    utm: dict[str, str]
    startDate: int
    endDate: int = Field(description="0 while the visitor is on the page")
    focusedMs: int


class GweEvent(BaseModel):
    eventID: str
    category: str
    eventType: str
    eventName: str
    serverTimestamp: int = Field(description="engine clock, epoch ms")
    browserPageID: str
    globalVisitID: str
    url: str
    timestamp: int = Field(description="browser (or sender) clock, epoch ms")
    visitID: str
    pageID: str
    languageCode: str
    data: dict[str, Any]


class GweVisit(BaseModel):
    visitId: str
    startDate: int
    endDate: int = Field(description="0 while the visit is open")
    globalVisitID: str
    userAgentID: str | None
    userAgent: str
    languageCode: str
    timezoneOffset: int | None
    pageIds: list[str] | None
    pages: list[GwePage] | None
    eventIds: list[str] | None
    events: list[GweEvent] | None
    visitScope: str | None = Field(None, description="in an identity's visits")


class GweIdentity(BaseModel):
    identityId: str
    name: str | None
    location: str | None
    entityInCS: str | None
    visitScope: Literal["Authenticated", "Recognized"]
    attributes: dict[str, Any] = Field(description="what SignIn/UserInfo said besides")
    createdDate: int
    updatedDate: int


class IdentitiesQuery(_Query):
    association: Literal["Authenticated", "Recognized"] | None = Field(
        None, description="only identities associated with the visit this way"
    )


class GweIdentities(RootModel[list[GweIdentity]]):
    pass


class GweEvents(RootModel[list[GweEvent]]):
    pass


class GweVisits(RootModel[list[GweVisit]]):
    pass


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise InvalidInput(
            f"{name} {value!r} is not an ID: expected 32 upper-case hex characters",
            details=[{"field": name, "message": "expected 32 upper-case hex characters"}],
        )
    return value


def _identity_id(request: web.Request) -> str:
    value = request.match_info["identityId"]
    if not 0 < len(value) <= IDENTITY_ID_MAX_CHARS:
        raise InvalidInput(
            f"identityId must be 1 to {IDENTITY_ID_MAX_CHARS} characters",
            details=[{"field": "identityId", "message": "too long"}],
        )
    return value


def _trim(visit: dict[str, Any], q: _Includes) -> dict[str, Any]:
    """`include_x` lists the IDs; `include_x_detail` the resources too (GWE)."""
    if not q.include_pages_detail:
        visit["pages"] = None
    if not q.include_events_detail:
        visit["events"] = None
    return visit


def _paged(request: web.Request, items: list[Any], token: str | None) -> web.Response:
    headers = {}
    if token is not None:
        headers["Paging-Next"] = token
        headers["Link"] = f'<{request.rel_url.update_query(page_start=token)}>; rel="next"'
    return web.json_response(items, headers=headers)


async def get_visit(request: web.Request) -> web.StreamResponse:
    """GWE query visit: one visit, with its page and event IDs (or resources) when asked."""
    visit_id = path_id(request, "visitId")
    q = parse_query(request, VisitQuery)
    visit = await request.app[GWE_HISTORY].visit(visit_id, *q.embedded())
    if visit is None:
        raise NotFound(f"no visit {visit_id}", details=[{"field": "visitId", "message": "unknown"}])
    return web.json_response(_trim(visit, q))


async def _events(request: web.Request, scope: str, key: str) -> web.Response:
    q = parse_query(request, EventsQuery)
    found, after = await request.app[GWE_HISTORY].events(
        scope, key, q.filters(), q.page_start, q.page_size
    )
    return _paged(request, found, None if after is None else str(after))


async def get_visit_events(request: web.Request) -> web.StreamResponse:
    """GWE query events by visit, filtered, in arrival order."""
    return await _events(request, "visit", path_id(request, "visitId"))


async def get_page_events(request: web.Request) -> web.StreamResponse:
    """GWE query events by page, filtered, in arrival order."""
    return await _events(request, "page", path_id(request, "pageId"))


async def get_identity_events(request: web.Request) -> web.StreamResponse:
    """GWE query events by identity: every visit of it, on any browser or device."""
    return await _events(request, "identity", _identity_id(request))


async def get_identity(request: web.Request) -> web.StreamResponse:
    """GWE query identity: who signed in, as SignIn/UserInfo said, and the last visit scope."""
    identity_id = _identity_id(request)
    found = await request.app[GWE_HISTORY].identity(identity_id)
    if found is None:
        raise NotFound(
            f"no identity {identity_id!r}",
            details=[{"field": "identityId", "message": "unknown"}],
        )
    return web.json_response(found)


async def get_identity_visits(request: web.Request) -> web.StreamResponse:
    """GWE query visits by identity: newest first, across browsers and devices."""
    identity_id = _identity_id(request)
    q = parse_query(request, IdentityVisitsQuery)
    after = None
    if q.page_start is not None:
        started, _, visit_id = q.page_start.partition("-")
        after = (int(started), visit_id)
    filters = VisitFilters(
        since_ms=None if q.age is None else now_ms() - q.age * 1000,
        global_visit_id=q.globalVisitID,
        user_agent=q.userAgent,
    )
    reads = request.app[GWE_HISTORY]
    pages, events = q.embedded()
    size = min(q.page_size, EMBEDDING_PAGE_SIZE_MAX) if pages or events else q.page_size
    visits, last = await reads.identity_visits(identity_id, filters, after, size)
    if pages or events:
        for visit in visits:
            _trim(await reads.embed(visit, pages, events), q)
    return _paged(request, visits, None if last is None else f"{last[0]}-{last[1]}")


async def get_visit_identities(request: web.Request) -> web.StreamResponse:
    """GWE query identities by visit: who the visit signed in (or was recognized) as."""
    visit_id = path_id(request, "visitId")
    q = parse_query(request, IdentitiesQuery)
    found = await request.app[GWE_HISTORY].identities_of_visit(visit_id)
    return web.json_response([i for i in found if q.association in (None, i["visitScope"])])

"""GWE's "create event for visit": a back end or a mobile app posts events for a visit.

The event goes through the tracker's own envelope validation (``EventIn``), ingest and
strategies; what the sender leaves out is filled from the live visit (its global visit ID, its
current page and URL) or generated (event ID, timestamp).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .. import constants as C
from ..monitoring.bounds import WHOLE, JSONData
from ..monitoring.ingest import now_ms
from ..monitoring.models import EVENT_IN
from .errors import Conflict, InvalidInput, NotFound
from .gwe_history import path_id
from .parsing import parse_json
from .state import INGESTOR, LIFECYCLE, REGISTRY

ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]


class ServerEventIn(BaseModel):
    """One event in GWE's envelope; only ``eventName`` is required."""

    model_config = ConfigDict(extra="forbid")

    eventName: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    eventType: Literal["SYSTEM", "BUSINESS"] = "BUSINESS"
    eventID: ID | None = Field(None, description="default: a new ID; a repeated ID is dropped")
    visitID: ID | None = Field(None, description="if given, the visitId of the path")
    pageID: ID | None = Field(None, description="default: the visit's current page")
    globalVisitID: ID | None = Field(
        None, description="default: the live visit's; given for an unknown visit, starts it"
    )
    timestamp: Annotated[int, Field(ge=0, le=C.MAX_TIMESTAMP_MS), WHOLE] | None = Field(
        None, description="sender clock, epoch ms; default: now"
    )
    url: Annotated[str, StringConstraints(max_length=4096)] | None = None
    category: Annotated[str, StringConstraints(max_length=1000)] = ""
    languageCode: Annotated[str, StringConstraints(max_length=35)] = ""
    data: JSONData = Field(default_factory=dict)


class ServerEventOut(BaseModel):
    eventID: str
    visitID: str
    globalVisitID: str
    pageID: str
    accepted: int = Field(description="1, or 0 when the eventID was already taken")
    duplicates: int


def new_id() -> str:
    return uuid.uuid4().hex.upper()


def _conflict(field: str, message: str) -> Conflict:
    details = [{"field": field, "message": message}]
    return Conflict(f"{field}: {message}", details=details)


async def post_visit_event(request: web.Request) -> web.StreamResponse:
    """GWE create event for visit: one event from a back end or an app, as the tracker's."""
    visit_id = path_id(request, "visitId")
    body = await parse_json(request, ServerEventIn)
    if body.visitID is not None and body.visitID != visit_id:  # 409: valid, but not together
        raise _conflict("visitID", f"is not the visit of the path ({visit_id})")
    visit = request.app[REGISTRY].get(visit_id)
    if visit is None and body.globalVisitID is None:
        raise NotFound(
            f"visit {visit_id} is not live; send globalVisitID to start it",
            details=[{"field": "visitId", "message": "not live"}],
        )
    if visit is not None and body.globalVisitID not in (None, visit.global_visit_id):
        raise _conflict("globalVisitID", f"visit {visit_id} belongs to {visit.global_visit_id}")
    page = visit.current_page if visit is not None else None
    page_id = body.pageID or (page.page_id if page else new_id())
    known = visit.pages.get(page_id) if visit is not None else None
    envelope = {
        "eventType": body.eventType,
        "eventName": body.eventName,
        "eventID": body.eventID or new_id(),
        "pageID": page_id,
        "visitID": visit_id,
        "globalVisitID": visit.global_visit_id if visit is not None else body.globalVisitID,
        "timestamp": now_ms() if body.timestamp is None else body.timestamp,
        "url": body.url if body.url is not None else (known.url if known else ""),
        "category": body.category,
        "languageCode": body.languageCode or (visit.language_code if visit else ""),
        "data": body.data,
    }
    try:
        event = EVENT_IN.validate_python(envelope)  # the tracker's rules, exactly
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from exc
    fresh, duplicates = request.app[INGESTOR].ingest([event])
    if fresh:
        request.app[LIFECYCLE].decide(fresh)  # strategies see it as a tracker event
    accepted = len(fresh)
    out = {
        "eventID": event["eventID"],
        "visitID": visit_id,
        "globalVisitID": event["globalVisitID"],
        "pageID": page_id,
        "accepted": accepted,
        "duplicates": duplicates,
    }
    return web.json_response(out, status=201 if accepted else 200)

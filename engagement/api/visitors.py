"""A visitor's rights over REST: export (GET) and erasure (DELETE) of everything the engine
holds about one browser (globalVisitID) or one identity (identityId), for admins, audited.

The identity goes in the query, not the path, so that the audit log (which keeps a call's path
parts) never keeps an e-mail address after its owner asked for it to be erased."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .. import constants as C
from ..privacy.cluster import LOG_MARGIN_S
from ..privacy.rights import Subject, VisitorRights
from ..visits.identity import IDENTITY_ID_MAX_CHARS
from .errors import InvalidInput, NotFound
from .parsing import parse_query

RIGHTS = web.AppKey("visitor_rights", VisitorRights)
ERASURE_NOTE = (
    "erased on this node, in the shared store and in Redis when this answer was sent; other "
    "nodes read the erasure in Redis's erasure log, drop it from memory and delete what they "
    "had queued or written since within a read of the log and a few writes (a node cut from "
    "Redis meanwhile does it when it is back, within its reconnection and its writes, if "
    f"back within visit_timeout_s and {LOG_MARGIN_S / 60:.0f} minutes); systems the engine "
    "handed data to (GMS, chat, webhooks) keep theirs"
)

ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]


class VisitorPath(BaseModel):
    globalVisitID: ID


class IdentityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identityId: str = Field(min_length=1, max_length=IDENTITY_ID_MAX_CHARS)


class SubjectOut(BaseModel):
    globalVisitIDs: list[str]
    visitIDs: list[str]
    identityIds: list[str]


class ExportOut(BaseModel):
    subject: SubjectOut
    exportedAt: int = Field(description="engine clock, epoch ms")
    stored: dict[str, list[dict[str, Any]]] = Field(description="rows per table, as stored")
    live: dict[str, Any] = Field(
        description="in memory: visits, attempts, push buffers, counters, link tokens"
    )


class ErasureOut(BaseModel):
    subject: SubjectOut
    deleted: dict[str, int] = Field(description="rows deleted per table")
    live: dict[str, int] = Field(
        description="live visits, attempts, push streams, counters and link tokens removed"
    )
    completedAt: int = Field(description="engine clock, epoch ms: done on this node")
    scope: str


def _gvid(request: web.Request) -> str:
    try:
        return VisitorPath.model_validate(dict(request.match_info)).globalVisitID
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, where="path") from exc


async def _by_visitor(request: web.Request) -> Subject:
    return await request.app[RIGHTS].find(global_visit_ids=[_gvid(request)])


async def _by_identity(request: web.Request) -> Subject:
    query = parse_query(request, IdentityQuery)
    return await request.app[RIGHTS].find(identity_ids=[query.identityId])


def _nothing(subject: Subject, field: str) -> NotFound:
    return NotFound(
        "the engine holds nothing about this visitor",
        details=[{"field": field, "message": "unknown"}],
    )


async def get_visitor(request: web.Request) -> web.StreamResponse:
    """Everything the engine holds about one browser (its globalVisitID)."""
    subject = await _by_visitor(request)
    return await _export(request, subject, "globalVisitID")


async def get_identity_data(request: web.Request) -> web.StreamResponse:
    """Everything the engine holds about one identity and the browsers it used."""
    subject = await _by_identity(request)
    return await _export(request, subject, "identityId")


async def _export(request: web.Request, subject: Subject, field: str) -> web.StreamResponse:
    export = await request.app[RIGHTS].export(subject)
    if not any(export["stored"].values()) and not export["live"]["visits"]:
        raise _nothing(subject, field)
    return web.json_response(export)


async def delete_visitor(request: web.Request) -> web.StreamResponse:
    """Erase everything the engine holds about one browser (its globalVisitID)."""
    return await _erase(request, await _by_visitor(request), "globalVisitID")


async def delete_identity_data(request: web.Request) -> web.StreamResponse:
    """Erase everything the engine holds about one identity and the browsers it used."""
    return await _erase(request, await _by_identity(request), "identityId")


async def _erase(request: web.Request, subject: Subject, field: str) -> web.StreamResponse:
    erased = await request.app[RIGHTS].erase(subject)
    if not any(erased["deleted"].values()) and not any(erased["live"].values()):
        raise _nothing(subject, field)
    return web.json_response({**erased, "scope": ERASURE_NOTE})

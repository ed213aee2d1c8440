"""The audit log's reads: who changed what, newest first, a page at a time (admins only)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .. import constants as C
from ..audit import read_audit
from .parsing import parse_query
from .state import HISTORY

MAX_AUDIT_PAGE = 500  # entries per page


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=MAX_AUDIT_PAGE, description="entries per page")
    before: int | None = Field(
        None, ge=1, le=C.MAX_SAFE_INTEGER, description="the previous page's `next`"
    )


class AuditEntryOut(BaseModel):
    id: int
    at: int = Field(description="epoch ms")
    who: str = Field(description="the key's name, basic:<user>, or the console user's key")
    role: str
    action: str = Field(description="the route's name, e.g. console-invite, availability-group")
    target: dict[str, str] = Field(description="the path's parts: visitID, group...")
    status: int = Field(description="what the engine answered (2xx done, 4xx refused)")
    client: str = Field(description="the caller's address")


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]
    next: int | None = Field(description="pass as `before` for older entries; null at the end")


async def get_audit(request: web.Request) -> web.StreamResponse:
    """Recorded actions, newest first."""
    query = parse_query(request, AuditQuery)
    history = request.app[HISTORY]
    await history.catch_up()
    entries = await read_audit(history.db, query.limit + 1, query.before)
    page = entries[: query.limit]
    more = len(entries) > query.limit
    out = AuditOut(
        entries=[AuditEntryOut(**e) for e in page], next=page[-1]["id"] if more else None
    )
    return web.json_response(out.model_dump())

"""Widgets' asynchronous chat session, kept with the visitor on the engine (browser endpoints;
bound to the visitor by the key only their browser holds, see ``privacy.chat_sessions``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .. import constants as C
from ..monitoring.ingest import now_ms
from ..privacy.chat_sessions import ChatSessions, WrongKey
from .errors import Forbidden, PayloadTooLarge
from .parsing import BEACON_TYPES, parse_json
from .state import SETTINGS

CHAT_SESSIONS = web.AppKey("chat_sessions", ChatSessions)
ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]


class ChatSessionKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    globalVisitID: ID
    key: ID = Field(description="the visitor's key, made by their tracker")


class ChatSessionIn(ChatSessionKey):
    visitID: ID
    data: Any = Field(description="what Widgets gives getSessionData; null deletes it")


class ChatSessionOut(BaseModel):
    data: Any = Field(description="what was saved, or null")


def _refused(exc: WrongKey) -> Forbidden:
    return Forbidden(
        "this chat session was saved with another key",
        details=[{"field": "key", "message": "not the session's key"}],
    )


async def save_chat_session(request: web.Request) -> web.StreamResponse:
    """Keep the visitor's chat session data (Widgets' ``getSessionData`` gives it)."""
    body = await parse_json(request, ChatSessionIn, BEACON_TYPES)
    data = None if body.data is None else json.dumps(body.data, separators=(",", ":"))
    limit = request.app[SETTINGS].chat_session_max_bytes
    if data is not None and len(data.encode()) > limit:
        raise PayloadTooLarge(
            f"data: more than chat_session_max_bytes ({limit})",
            details=[{"field": "data", "message": f"over {limit} bytes"}],
        )
    try:
        await request.app[CHAT_SESSIONS].save(
            body.globalVisitID, body.visitID, body.key, data, now_ms()
        )
    except WrongKey as exc:
        raise _refused(exc) from exc
    return web.json_response({"data": body.data})


async def load_chat_session(request: web.Request) -> web.StreamResponse:
    """The visitor's chat session data (Widgets' ``setSessionData`` returns it), or null."""
    body = await parse_json(request, ChatSessionKey, BEACON_TYPES)
    try:
        data = await request.app[CHAT_SESSIONS].load(body.globalVisitID, body.key)
    except WrongKey as exc:
        raise _refused(exc) from exc
    return web.json_response({"data": None if data is None else json.loads(data)})

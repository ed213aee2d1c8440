"""After "yes": the callback form and GMS chats, posted by the invitation in the page."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..attempts import Attempt, State
from ..launchers.handoff import CallbackInputError, attached_data, desired_time, normalize_phone
from ..monitoring.ingest import now_ms
from ..monitoring.models import ID
from .errors import Conflict, HTTPError, InvalidInput, NotFound
from .origins import browser_endpoint
from .parsing import parse_json
from .state import CLIENT, ENGAGEMENTS, INVITES, OUTBOX, REGISTRY, SETTINGS, origins_of
from .throttling import GUARD, admit_handoff

log = logging.getLogger("engagement.launchers")


class Unavailable(HTTPError):
    status = 503
    code = "no_agent_available"


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attemptID: ID
    visitID: ID
    pageID: ID
    customer_number: Annotated[str, Field(alias="_customer_number", max_length=40)]
    desired_time: Annotated[str, Field(alias="_desired_time", max_length=40)] = "now"


class CallbackOut(BaseModel):
    requestID: str
    desiredTime: str = Field(description="'now' or ISO 8601 UTC, as sent to GMS")
    state: str
    message: str = Field(description="the confirmation to show, in the visitor's language")


def _confirmation(request: web.Request, visit_id: str, when: str) -> str:
    visit = request.app[REGISTRY].get(visit_id)
    t = request.app[INVITES].strings(visit.language_code if visit else "")
    if when == "now":
        return t.get("callback_confirmed_now", "")
    # getTimezoneOffset() is UTC minus local time, in minutes.
    offset = timedelta(minutes=-(visit.timezone_offset or 0) if visit else 0)
    local = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(timezone(offset))
    return t.get("callback_confirmed_at", "").format(
        date=local.strftime("%d/%m"), time=local.strftime("%H:%M")
    )


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attemptID: ID
    visitID: ID
    pageID: ID


class ChatOut(BaseModel):
    chatURL: str | None = Field(
        description="GMS's _chatIxnAPI-CREATE-URL (Chat API v1), absolute: not a page, the REST "
        "URL the chat page (chat_url) calls to start the chat"
    )
    gmsID: str | None


def gms_rest_url(gms_base: str, url: object) -> str | None:
    """GMS answers REST paths ("/genesys/1/service/<id>/ixn/chat"), which live under the same
    base as the request-chat call; absolute URLs are kept."""
    if not isinstance(url, str) or not url:
        return None
    return gms_base.rstrip("/") + url if url.startswith("/") else url


def _accepted_attempt(request: web.Request, attempt_id: str, visit_id: str, media: str) -> Attempt:
    engagements = request.app[ENGAGEMENTS]
    attempt = engagements.find(attempt_id, visit_id)
    if attempt is None or attempt.media != media:
        raise NotFound(
            f"no {media} engagement {attempt_id} for visit {visit_id}",
            details=[{"field": "attemptID", "message": "unknown"}],
        )
    if attempt.state in (State.OFFERED, State.SHOWN):
        engagements.move(attempt, State.ACCEPTED, now_ms(), f"{media} requested")
    elif attempt.state is not State.ACCEPTED:
        raise Conflict(
            f"engagement {attempt_id} is {attempt.state.value}",
            details=[{"field": "attemptID", "message": attempt.state.value}],
        )
    return attempt


async def _store_callback(
    request: web.Request, attempt: Attempt, service: str, form: dict[str, str], when: str
) -> str:
    request_id = await request.app[OUTBOX].enqueue(
        attempt.attempt_id, attempt.visit_id, service, form
    )
    attempt.handoff.update({"requestID": request_id, "desiredTime": when, "service": service})
    request.app[ENGAGEMENTS].store.record_attempt(attempt)
    return request_id


@browser_endpoint(origins_of)
async def post_callback(request: web.Request) -> web.StreamResponse:
    """The callback invitation's form: stored at once, delivered to GMS behind the answer."""
    body = await parse_json(request, CallbackIn)
    visit = request.app[REGISTRY].get(body.visitID)
    offset = visit.timezone_offset if visit else None
    try:
        number = normalize_phone(body.customer_number)
        when = desired_time(body.desired_time, datetime.now(UTC), offset)
    except CallbackInputError as exc:
        raise InvalidInput(str(exc), details=[{"field": exc.field, "message": str(exc)}]) from exc
    known = request.app[ENGAGEMENTS].find(body.attemptID, body.visitID)
    if known is not None and known.handoff.get("requestID"):
        # The form sent twice (a double click, a retry): still one callback.
        sent = {
            "requestID": known.handoff["requestID"],
            "desiredTime": known.handoff["desiredTime"],
        }
        message = _confirmation(request, body.visitID, sent["desiredTime"])
        return web.json_response(
            {**sent, "state": known.state.value, "message": message}, status=202
        )
    visitor = visit.global_visit_id if visit else known.global_visit_id if known else body.visitID
    address = request.app[GUARD].proxies.client_address(request)
    limits = {"callback_number": number, "callback_visitor": visitor}
    limits.update({"callback_address": address, "callback_overall": ""})
    await admit_handoff(request, limits, visit.language_code if visit else "")
    attempt = _accepted_attempt(request, body.attemptID, body.visitID, "callback")
    settings = request.app[SETTINGS]
    form = {
        "_customer_number": number,
        "_desired_time": when,
        **settings.gms_extra,
        **{str(k): str(v) for k, v in dict(attempt.params.get("attached") or {}).items()},
        **attached_data(attempt, body.pageID, visit, settings.user_data.attach),
    }
    service = str(attempt.params.get("service") or settings.gms_callback_service)
    # Shielded: once stored, the request is recorded on the attempt even if the visitor leaves.
    request_id = await asyncio.shield(_store_callback(request, attempt, service, form, when))
    message = _confirmation(request, body.visitID, when)
    return web.json_response(
        {
            "requestID": request_id,
            "desiredTime": when,
            "state": attempt.state.value,
            "message": message,
        },
        status=202,
    )


@browser_endpoint(origins_of)
async def post_chat(request: web.Request) -> web.StreamResponse:
    """Create the chat through GMS request-chat (when the engine is set up to)."""
    body = await parse_json(request, ChatIn)
    settings = request.app[SETTINGS]
    gms = settings.resolved_gms_url()
    if not settings.gms_chat or gms is None:
        raise NotFound("chats are not created through GMS here (gms_chat is off)")
    visit = request.app[REGISTRY].get(body.visitID)
    address = request.app[GUARD].proxies.client_address(request)
    visitor = visit.global_visit_id if visit else body.visitID
    limits = {"chat_visitor": visitor, "chat_address": address, "chat_overall": ""}
    await admit_handoff(request, limits, visit.language_code if visit else "")
    attempt = _accepted_attempt(request, body.attemptID, body.visitID, "chat")
    form = {
        **settings.gms_extra,
        **attached_data(attempt, body.pageID, visit, settings.user_data.attach),
    }
    url = f"{gms.rstrip('/')}/genesys/1/service/request-chat"
    engagements = request.app[ENGAGEMENTS]
    async with request.app[CLIENT].post(url, data=form) as r:
        if r.status == 503:
            engagements.move(attempt, State.FAILED, now_ms(), "no agent available (GMS 503)")
            visit = request.app[REGISTRY].get(body.visitID)
            t = request.app[INVITES].strings(visit.language_code if visit else "")
            raise Unavailable(t.get("chat_unavailable", "No agent is available right now."))
        if r.status >= 300:
            reason = f"GMS request-chat answered {r.status}"
            engagements.move(attempt, State.FAILED, now_ms(), reason)
            raise HTTPError(reason)
        answer = await r.json(content_type=None)
    chat_url = gms_rest_url(gms, answer.get("_chatIxnAPI-CREATE-URL"))
    gms_id = answer.get("_id")
    attempt.handoff.update({"gmsID": gms_id, "chatURL": chat_url})
    engagements.move(attempt, State.LAUNCHED, now_ms(), "GMS chat created")
    return web.json_response({"chatURL": chat_url, "gmsID": gms_id})

"""After "yes": the callback form and GMS chats, posted by the invitation in the page."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..attempts import Attempt, State
from ..launchers.base import LaunchRefused
from ..launchers.gms_callback import GMSCallback
from ..launchers.gms_chat import GMSChat
from ..launchers.handoff import CallbackInputError, desired_time, normalize_phone
from ..monitoring.models import ID
from .errors import Conflict, HTTPError, InvalidInput, NotFound
from .parsing import parse_json
from .state import INVITES, LAUNCHERS, LIFECYCLE, REGISTRY
from .throttling import GUARD, admit_handoff

log = logging.getLogger(__name__)


class Unavailable(HTTPError):
    status = 503
    code = "no_agent_available"


# What launchers.handoff.normalize_phone takes: 6 to 15 digits, "+" or "00" first, separators
# anywhere (written so that a schema, and so a client, can check it too).
_S, _D = r"[\s().\-/]*", r"(?:[\s().\-/]*[0-9])"
PHONE_FORM = {
    "pattern": rf"^{_S}(\+{_D}{{6,15}}|0{_S}0{_D}{{6,15}}"
    rf"|[1-9]{_D}{{5,14}}|0{_S}[1-9]{_D}{{4,13}}){_S}$"
}
# 'now' (or empty, 'asap'), '+1h', 'tomorrow' or an ISO 8601 time with its zone, within the next
# 30 days (the one thing a schema cannot say).
WHEN_FORM = {
    "pattern": r"^(|now|asap|\+1h|tomorrow|"
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))$"
}


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attemptID: ID
    visitID: ID
    pageID: ID
    # The forms in the schema; checked by the launcher, whose message the visitor reads.
    customer_number: Annotated[
        str, Field(alias="_customer_number", max_length=40, json_schema_extra=PHONE_FORM)
    ]
    desired_time: Annotated[
        str, Field(alias="_desired_time", max_length=40, json_schema_extra=WHEN_FORM)
    ] = "now"


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


async def _accepted_attempt(
    request: web.Request, attempt_id: str, visit_id: str, media: str
) -> Attempt:
    """The attempt the visitor accepted (accepted now if the page has not said so yet)."""
    lifecycle = request.app[LIFECYCLE]
    await lifecycle.catch_up(visit_id, attempt_id)  # several nodes: as others left it
    attempt = lifecycle.find(attempt_id, visit_id)
    if attempt is None or attempt.media != media:
        raise NotFound(
            f"no {media} engagement {attempt_id} for visit {visit_id}",
            details=[{"field": "attemptID", "message": "unknown"}],
        )
    if attempt.state in (State.OFFERED, State.SHOWN):
        await lifecycle.accept(attempt, f"{media} requested")
    elif attempt.state is not State.ACCEPTED:
        raise Conflict(
            f"engagement {attempt_id} is {attempt.state.value}",
            details=[{"field": "attemptID", "message": attempt.state.value}],
        )
    return attempt


async def post_callback(request: web.Request) -> web.StreamResponse:
    """The callback invitation's form: stored at once, delivered to GMS behind the answer."""
    body = await parse_json(request, CallbackIn)
    await request.app[LIFECYCLE].catch_up(body.visitID, body.attemptID)  # several nodes
    visit = request.app[REGISTRY].get(body.visitID)
    offset = visit.timezone_offset if visit else None
    try:
        number = normalize_phone(body.customer_number)
        when = desired_time(body.desired_time, datetime.now(UTC), offset)
    except CallbackInputError as exc:
        raise InvalidInput(str(exc), details=[{"field": exc.field, "message": str(exc)}]) from exc
    known = request.app[LIFECYCLE].find(body.attemptID, body.visitID)
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
    attempt = await _accepted_attempt(request, body.attemptID, body.visitID, "callback")
    launcher = request.app[LAUNCHERS].named("gms_callback", GMSCallback)
    assert launcher is not None  # always registered
    request_id = await launcher.request(attempt, body.pageID, number, when)
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


async def post_chat(request: web.Request) -> web.StreamResponse:
    """Create the chat through GMS request-chat (when the engine is set up to)."""
    body = await parse_json(request, ChatIn)
    launcher = request.app[LAUNCHERS].named("gms_chat", GMSChat)
    if launcher is None:
        raise NotFound("chats are not created through GMS here (gms_chat is off)")
    visit = request.app[REGISTRY].get(body.visitID)
    address = request.app[GUARD].proxies.client_address(request)
    visitor = visit.global_visit_id if visit else body.visitID
    limits = {"chat_visitor": visitor, "chat_address": address, "chat_overall": ""}
    await admit_handoff(request, limits, visit.language_code if visit else "")
    attempt = await _accepted_attempt(request, body.attemptID, body.visitID, "chat")
    try:
        created = await launcher.create(attempt, body.pageID)
    except LaunchRefused as exc:
        if exc.unavailable:
            t = request.app[INVITES].strings(visit.language_code if visit else "")
            raise Unavailable(
                t.get("chat_unavailable", "No agent is available right now.")
            ) from exc
        raise HTTPError(exc.reason) from exc
    return web.json_response({"chatURL": created.chat_url, "gmsID": created.gms_id})

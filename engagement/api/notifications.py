"""Push streams, GWE's notify and gateway endpoints, dispositions and invitations."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter, model_validator

from .. import constants as C
from ..attempts import Attempt, Origin, State
from ..cluster.push import PushUnavailable
from ..invite import InviteError
from ..launchers.registry import Media
from ..lifecycle.owner import Conflict as LifecycleConflict
from ..lifecycle.transitions import PageCode
from ..monitoring.bounds import JSONData
from ..monitoring.ingest import now_ms
from ..monitoring.models import ID
from ..notifications.hub import CLOSED
from ..notifications.service import engaged_frame, live_chat
from ..visits.model import Visit
from .errors import Conflict, InvalidInput, NotFound, Unavailable
from .origins import ORIGIN, content_url_allowed, cors_headers
from .parsing import parse, parse_headers, parse_json, parse_query, read_body
from .state import HUB, INVITES, LIFECYCLE, NOTIFIER, REGISTRY, SETTINGS

log = logging.getLogger(__name__)

CHANNEL = r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$"


# -- models --


class NotifyMessage(BaseModel):
    """One GWE notification: for a page of the visit (or all of them), on a channel."""

    model_config = ConfigDict(extra="forbid")

    page: ID | None = Field(None, description="pageID; omitted or null: every page")
    channel: Annotated[str, Field(pattern=CHANNEL)]
    data: JSONData = Field(default_factory=dict)

    @model_validator(mode="after")
    def _append_content_needs_url(self) -> NotifyMessage:
        if self.channel == "gpe.appendContent":
            url = self.data.get("url")
            if not isinstance(url, str) or not url:
                raise ValueError("gpe.appendContent needs data.url, the content to append")
            method = self.data.get("method", "GET")
            if method not in ("GET", "POST"):
                raise ValueError(f"data.method must be GET or POST, not {method!r}")
        return self


NotifyBody = RootModel[Annotated[list[NotifyMessage], Field(min_length=1, max_length=50)]]
NOTIFY_BODY = TypeAdapter(NotifyBody)


class StreamQuery(BaseModel):
    visitID: ID
    pageID: ID
    since: int = Field(0, ge=0, le=C.MAX_SAFE_INTEGER, description="last message id handled")


class StreamHeaders(BaseModel):
    """EventSource sends back the id of the last message it got when it reconnects."""

    last_event_id: Annotated[
        str | None,
        Field(
            alias="Last-Event-ID",
            pattern=rf"^[0-9]{{1,{C.MAX_LAST_EVENT_ID_CHARS}}}$",
            description="id of the last message handled (ids are per-visit counters)",
        ),
    ] = None


class DispositionQuery(BaseModel):
    visitID: ID
    pageID: ID | None = None
    code: PageCode = Field(
        description="what the page saw: the invitation's answer, or the chat's news "
        "(launched, restored, agent_connected, completed, error, restore_failed, "
        "restore_timeout, already_open)"
    )


class InviteQuery(BaseModel):
    visitID: ID


class IxnProfile(BaseModel):
    """What to engage: an attempt waiting for this decision, or a new one for a visit."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={  # what _new_needs_offer checks, for the OpenAPI document
            "anyOf": [
                {"required": ["attemptID"], "properties": {"attemptID": {"type": "string"}}},
                {
                    "required": ["invite", "media"],
                    "properties": {"invite": {"type": "string"}, "media": {"type": "string"}},
                },
            ]
        },
    )

    visitID: ID
    attemptID: ID | None = None
    invite: str | None = Field(
        None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        description="template in invites/ (a file name, e.g. chat.html)",
    )
    media: Media | None = None
    params: JSONData = Field(default_factory=dict)
    timeoutS: float = Field(30, gt=0, le=3600)
    strategy: str | None = Field(None, max_length=200, description="name in reports")

    @model_validator(mode="after")
    def _new_needs_offer(self) -> IxnProfile:
        if self.attemptID is None and (self.invite is None or self.media is None):
            raise ValueError("without attemptID, give invite and media for a new attempt")
        return self


class EngageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ixnProfile: IxnProfile


class CancelData(BaseModel):
    model_config = ConfigDict(extra="allow")
    attemptID: ID
    reason: str = Field("", max_length=500)


class NoEngageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cancelData: CancelData


class AttemptStateOut(BaseModel):
    attemptID: str
    state: str


# -- helpers --


def _content_allowed(request: web.Request, url: str) -> bool:
    """The tracker's rule: the page itself, the engine, or a content source."""
    own = f"{request.scheme}://{request.host}"
    return content_url_allowed(url, [own, *request.app[SETTINGS].content_sources()])


def _page_state(request: web.Request, visit: Visit, page_id: str | None) -> str:
    """'open' (or no page named: every page), 'closed' or 'unknown'. A page is open while
    it holds a push stream, or once entered and until it exits (its stream may be connecting)."""
    if page_id is None or request.app[HUB].has_stream(visit.visit_id, page_id):
        return "open"
    page = visit.pages.get(page_id)
    if page is None:
        return "unknown"
    return "closed" if page.exited_at is not None else "open"


def _attempt(request: web.Request, attempt_id: str, visit_id: str) -> Attempt:
    attempt = request.app[LIFECYCLE].find(attempt_id, visit_id)
    if attempt is None:
        raise NotFound(
            f"no engagement attempt {attempt_id} for visit {visit_id}",
            details=[{"field": "attemptID", "message": "unknown"}],
        )
    return attempt


# -- GWE REST --


async def notify(request: web.Request) -> web.StreamResponse:
    """GWE notify: deliver notifications to the pages of a live visit."""
    visit_id = request.match_info["visitID"]
    body = parse(NOTIFY_BODY, await read_body(request))
    registry = request.app[REGISTRY]
    visit = registry.get(visit_id)
    # Several nodes: a notify only needs the visit and its pages, so this node catches up
    # (one more round trip) only when its own copy cannot say that they are live.
    if visit is None or any(_page_state(request, visit, m.page) != "open" for m in body.root):
        await request.app[LIFECYCLE].catch_up(visit_id)
        visit = registry.get(visit_id)
    if visit is None:
        raise NotFound(
            f"no live visit {visit_id}", details=[{"field": "visitID", "message": "unknown"}]
        )
    for i, message in enumerate(body.root):
        url = message.data.get("url")
        checked = message.channel in ("gpe.appendContent", "gpe.invite")
        if checked and isinstance(url, str) and not _content_allowed(request, url):
            raise InvalidInput(
                f"{i}.data.url: {url!r} is not on an allowed content origin "
                "(the engine, an allowed site, or content_origins)",
                details=[{"field": f"{i}.data.url", "message": "origin not allowed"}],
            )
    for i, message in enumerate(body.root):
        state = _page_state(request, visit, message.page)
        if state != "open":
            raise NotFound(
                f"{i}.page: page {message.page} of visit {visit_id} is not open ({state}); "
                "omit page to reach every open page of the visit",
                details=[{"field": f"{i}.page", "message": state}],
            )
    notifier = request.app[NOTIFIER]
    for message in body.root:
        notifier.notify(visit_id, message.page, message.channel, message.data)
    try:  # with Redis: answer once a page reconnecting to any node would get them
        await notifier.sent()
    except PushUnavailable as exc:
        raise Unavailable(str(exc), retry_after_s=C.PUSH_RETRY_MS // 1000) from exc
    return web.Response(status=200)  # GWE answers with a bare status


async def engage(request: web.Request) -> web.StreamResponse:
    """GWE gateway: start an invitation now (an attempt waiting for this decision, or new)."""
    profile = (await parse_json(request, EngageBody)).ixnProfile
    lifecycle = request.app[LIFECYCLE]
    await lifecycle.catch_up(profile.visitID)  # several nodes: as others left it
    visit = request.app[REGISTRY].get(profile.visitID)
    if visit is None:
        raise NotFound(
            f"no live visit {profile.visitID}",
            details=[{"field": "ixnProfile.visitID", "message": "unknown"}],
        )
    if profile.attemptID is not None:
        attempt = _attempt(request, profile.attemptID, profile.visitID)
        if attempt.state is State.DETECTED:
            lifecycle.offer(attempt, visit)
        elif not attempt.live:
            raise Conflict(
                f"attempt {attempt.attempt_id} already ended: {attempt.state.value}",
                details=[{"field": "ixnProfile.attemptID", "message": "ended"}],
            )
    else:
        if not request.app[INVITES].exists(profile.invite or ""):  # what to fix first
            raise NotFound(
                f"ixnProfile.invite: no template {profile.invite!r} in invites/",
                details=[{"field": "ixnProfile.invite", "message": "unknown"}],
            )
        if lifecycle.engine.busy(visit):
            raise Conflict(
                f"visit {visit.visit_id} already has a live engagement (strict mode)",
                details=[{"field": "ixnProfile.visitID", "message": "busy"}],
            )
        attempt = lifecycle.new_attempt(
            visit,
            profile.strategy or "external",
            Origin.EXTERNAL,
            profile.invite or "",
            profile.media or "",
            profile.params,
            profile.timeoutS,
        )
        if not await lifecycle.add_claimed(visit, attempt):  # several nodes: claimed elsewhere
            raise Conflict(
                f"visit {visit.visit_id} already has a live engagement (strict mode)",
                details=[{"field": "ixnProfile.visitID", "message": "busy"}],
            )
    return web.json_response({"attemptID": attempt.attempt_id, "state": attempt.state.value})


async def noengage(request: web.Request) -> web.StreamResponse:
    """GWE gateway: drop an engagement attempt."""
    cancel = (await parse_json(request, NoEngageBody)).cancelData
    lifecycle = request.app[LIFECYCLE]
    attempt = lifecycle.by_id.get(cancel.attemptID)
    if attempt is None:
        raise NotFound(
            f"no engagement attempt {cancel.attemptID}",
            details=[{"field": "cancelData.attemptID", "message": "unknown"}],
        )
    try:
        lifecycle.cancel(attempt, cancel.reason or "noengage")
    except LifecycleConflict as exc:
        raise Conflict(
            f"attempt {attempt.attempt_id} is {attempt.state.value}: too late to cancel",
            details=[{"field": "cancelData.attemptID", "message": attempt.state.value}],
        ) from exc
    return web.json_response({"attemptID": attempt.attempt_id, "state": attempt.state.value})


# -- browser endpoints --


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events for one page: its notifications, replayed after a reconnect."""
    query = parse_query(request, StreamQuery)
    last = parse_headers(request, StreamHeaders).last_event_id
    since = max(query.since, int(last or 0))
    hub = request.app[HUB]
    heartbeat_s = request.app[SETTINGS].push_heartbeat_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            **cors_headers(request[ORIGIN]),
        }
    )
    await response.prepare(request)
    subscription = hub.connect(query.visitID, query.pageID, since, now_ms())
    chat = live_chat(request.app[REGISTRY].get(query.visitID))
    try:
        await response.write(f"retry: {C.PUSH_RETRY_MS}\n\n".encode())
        if chat is not None:
            await response.write(engaged_frame(chat))
        while True:
            frame = await subscription.get(heartbeat_s)
            if frame == CLOSED:
                break
            await response.write(frame if frame is not None else b": ping\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.disconnect(subscription, now_ms())
    return response


async def disposition(request: web.Request) -> web.StreamResponse:
    """What the visitor did with an invitation (idempotent: repeating it changes nothing)."""
    query = parse_query(request, DispositionQuery)
    attempt_id = request.match_info["attemptID"]
    await request.app[LIFECYCLE].catch_up(query.visitID, attempt_id)  # several nodes
    attempt = _attempt(request, attempt_id, query.visitID)
    try:  # an acceptance is written to history before this answers
        await request.app[LIFECYCLE].page_reported(attempt, query.code)
    except LifecycleConflict as exc:
        raise Conflict(
            str(exc), details=[{"field": "code", "message": attempt.state.value}]
        ) from exc
    return web.json_response({"attemptID": attempt.attempt_id, "state": attempt.state.value})


async def invite_html(request: web.Request) -> web.StreamResponse:
    """The invitation of an attempt, rendered from its template in invites/."""
    query = parse_query(request, InviteQuery)
    attempt_id = request.match_info["attemptID"]
    await request.app[LIFECYCLE].catch_up(query.visitID, attempt_id)  # several nodes
    attempt = _attempt(request, attempt_id, query.visitID)
    visit = request.app[REGISTRY].get(attempt.visit_id)
    language = visit.language_code if visit else ""
    try:
        html = request.app[INVITES].render(attempt, language, f"{request.scheme}://{request.host}")
    except InviteError as exc:
        log.error("%s", exc, extra={"attemptID": attempt.attempt_id})
        raise NotFound(str(exc), details=[{"field": "invite", "message": "template"}]) from exc
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

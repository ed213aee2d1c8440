"""Agents' pages: who is on the site now, one visit in full, and inviting a visitor now."""

from __future__ import annotations

import itertools
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from .. import constants as C
from ..api.history import held_back_json
from ..api.parsing import parse_query, read_form
from ..api.state import HISTORY, LIFECYCLE, REGISTRY, SETTINGS
from ..attempts import Origin
from ..launchers.registry import MEDIA, Media
from ..monitoring.ingest import now_ms
from ..visits.live import summary
from ..visits.model import Visit
from .login import csrf_refused
from .session import CSRF_FIELD, check_csrf
from .templating import redirect, render

_ID = re.compile(C.ID_PATTERN)
AGENT_INVITE_TIMEOUT_S = 30.0  # as long as GWE's engage gives a visitor to answer
CONSOLE_ROWS = 100  # most recently active visitors the live page shows
NAME_FIELDS = ("firstName", "lastName")  # what the tracker's UserInfo / SignIn usually carry


class InviteForm(BaseModel):
    """The "invite now" form of a live visit's page."""

    invite: str = Field(min_length=1, max_length=200)
    media: Media
    agent: str = Field("", max_length=60, pattern=r"^[^\x00-\x1f\x7f]*$")


def invite_templates(request: web.Request) -> list[str]:
    """The invitation templates agents may pick (``_`` marks a layout, not an invitation)."""
    folder = request.app[SETTINGS].invites_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.html") if not p.name.startswith("_"))


def display_name(user_info: dict[str, Any]) -> str:
    """What the visitor told the site about themselves, short: a name, or an e-mail / ID."""
    name = " ".join(str(user_info[k]) for k in NAME_FIELDS if user_info.get(k))
    if name:
        return name
    for key in ("email", "customerID"):
        if user_info.get(key):
            return str(user_info[key])
    return ""


def live_row(visit: Visit, now: int) -> dict[str, Any]:
    """One live visitor: the API's listing entry plus the name they gave."""
    return {**summary(visit, now), "name": display_name(visit.user_info)}


def first_rows(request: web.Request) -> list[dict[str, Any]]:
    """The most recently active visitors, as many as the console shows."""
    now = now_ms()
    recent = itertools.islice(request.app[REGISTRY].recent(), CONSOLE_ROWS)
    return [live_row(v, now) for v in recent]


class SinceQuery(BaseModel):
    since: int = Field(0, ge=0, le=C.MAX_SAFE_INTEGER, description="`version` of the last answer")


async def visitors_page(request: web.Request) -> web.StreamResponse:
    """Live visitors; the page's script applies what changed, from ``visitors_json``."""
    context = {
        "visits": first_rows(request),
        "count": len(request.app[REGISTRY]),
        "version": request.app[REGISTRY].version,
        "rows": CONSOLE_ROWS,
    }
    return render(request, "visitors.html", context)


async def visitors_json(request: web.Request) -> web.StreamResponse:
    """What changed among live visitors since ``since`` (a ``version`` this answered before):
    the visitors who changed, most recent first, at most as many as the console shows, and
    those who left. ``since=0``, or one older than the engine remembers, gives the first rows
    again with ``full``. A poll costs what changed, not what is live."""
    since = parse_query(request, SinceQuery).since
    registry = request.app[REGISTRY]
    now = now_ms()
    delta = registry.changed_since(since, CONSOLE_ROWS) if since else None
    if delta is None:
        rows, gone, full = first_rows(request), [], True
    else:
        rows, gone, full = [live_row(v, now) for v in delta[0]], delta[1], False
    body = {
        "version": registry.version,
        "count": len(registry),
        "full": full,
        "serverTime": now,
        "visits": rows,
        "gone": gone,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _not_found(request: web.Request, visit_id: str) -> web.Response:
    message = f"No visit {visit_id} in the history (it may be older than the retention period)."
    return render(request, "error.html", {"title": "Unknown visit", "message": message}, 404)


async def visit_page(request: web.Request) -> web.StreamResponse:
    """One visit, live or closed: pages, events, invitations and how each one went."""
    visit_id = request.match_info["visitID"]
    if not _ID.match(visit_id):
        return _not_found(request, visit_id)
    visit = await request.app[HISTORY].get_visit(visit_id)
    if visit is None:
        return _not_found(request, visit_id)
    live = request.app[REGISTRY].get(visit_id)
    busy = live is not None and request.app[LIFECYCLE].engine.busy(live)
    context = {
        "visit": visit,
        "live": live is not None,
        "held_back": held_back_json(live),
        "busy": busy,
        "name": display_name(visit["userInfo"]),
        "categories": dict(live.category_pages) if live else {},
        "templates": invite_templates(request) if live else [],
        "media": MEDIA,
        "page_numbers": {p["pageID"]: i for i, p in enumerate(visit["pages"], 1)},
    }
    return render(request, "visit.html", context)


async def invite_now(request: web.Request) -> web.StreamResponse:
    """Invite a live visitor now, the way a strategy would (origin: agent)."""
    visit_id = request.match_info["visitID"]
    form = await read_form(request)
    if not check_csrf(request, str(form.get(CSRF_FIELD, ""))):
        return csrf_refused(request)
    back = str(request.app.router["console-visit"].url_for(visitID=visit_id))
    if _ID.match(visit_id):
        await request.app[LIFECYCLE].catch_up(visit_id)  # several nodes: as others left it
    visit = request.app[REGISTRY].get(visit_id) if _ID.match(visit_id) else None
    if visit is None:
        return redirect(back, ("error", f"Visit {visit_id} is not on the site any more."))
    try:
        choice = InviteForm.model_validate({k: v for k, v in form.items() if isinstance(v, str)})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in error["loc"])
        return redirect(back, ("error", f"Not sent: {field}: {error['msg']}."))
    if choice.invite not in invite_templates(request):
        return redirect(back, ("error", f"Not sent: no invitation template {choice.invite!r}."))
    lifecycle = request.app[LIFECYCLE]
    if lifecycle.engine.busy(visit):
        last = visit.attempts[-1]
        message = (
            f"Not sent: this visit already has a live engagement ({last.strategy}, "
            f"{last.state.value}). Wait until it ends."
        )
        return redirect(back, ("error", message))
    attempt = lifecycle.new_attempt(
        visit,
        f"agent:{choice.agent.strip() or 'console'}",
        Origin.AGENT,
        choice.invite,
        choice.media,
        {},
        AGENT_INVITE_TIMEOUT_S,
    )
    if not await lifecycle.add_claimed(visit, attempt):  # several nodes: claimed on another
        return redirect(back, ("error", "Not sent: this visit already has a live engagement."))
    message = f"Invitation {choice.invite} ({choice.media}) sent: attempt {attempt.attempt_id}."
    return redirect(back, ("ok", message))

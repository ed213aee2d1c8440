"""The agent's desktop: a signed, short-lived link to one visit's history, in a compact view that
agent desktops and CRM side panels may frame (the ``frame_ancestors`` setting).

The link carries its expiry and an HMAC of (visit, expiry) under a key derived from the API
keys, so it opens one visit, read-only, until it expires; rotating the API keys voids all links.
Only this view may be framed, and only by the configured origins; the rest of the console sends
``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..api.auth import API_KEYS
from ..api.errors import Forbidden, NotFound
from ..api.gwe_history import EMBEDDED_MAX, path_id
from ..api.parsing import parse_query
from ..api.state import GWE_HISTORY, REGISTRY, SETTINGS
from ..monitoring.ingest import now_ms
from ..visits.gwe_reads import VisitFilters
from .templating import TEMPLATES, utc_time

log = logging.getLogger(__name__)
KEY_LABEL = b"engagement desktop link v1"  # keeps these signatures apart from any other use
OTHER_VISITS_SHOWN = 20  # the identity's latest visits listed under the visit


class DesktopLinkOut(BaseModel):
    url: str = Field(description="open (or frame) it before expiresAt; it shows this visit only")
    expiresAt: int = Field(description="epoch ms")


class DesktopQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exp: int = Field(ge=0, description="expiry, epoch s")
    sig: str = Field(pattern=r"^[0-9a-f]{64}$")


def _key(request: web.Request) -> bytes:
    configured: list[bytes] = request.app[API_KEYS]
    keys = sorted(configured)
    return hmac.new(KEY_LABEL, b"\0".join(keys), hashlib.sha256).digest()


def _signature(key: bytes, visit_id: str, exp: int) -> str:
    return hmac.new(key, f"{visit_id}.{exp}".encode(), hashlib.sha256).hexdigest()


async def post_desktop_link(request: web.Request) -> web.StreamResponse:
    """A signed link to this visit's compact history view, for an agent desktop or a CRM."""
    visit_id = path_id(request, "visitID")
    if await request.app[GWE_HISTORY].visit(visit_id) is None:
        raise NotFound(f"no visit {visit_id}", details=[{"field": "visitID", "message": "unknown"}])
    exp = now_ms() // 1000 + int(request.app[SETTINGS].desktop_link_ttl_s)
    query = {"exp": str(exp), "sig": _signature(_key(request), visit_id, exp)}
    url = request.app.router["desktop-visit"].url_for(visitID=visit_id).with_query(query)
    return web.json_response({"url": str(url), "expiresAt": exp * 1000})


def frame_headers(frame_ancestors: list[str]) -> dict[str, str]:
    """No scripts, no forms; framed only by the configured origins (none by default)."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; "
            f"frame-ancestors {ancestors}; form-action 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # the URL holds the signature
    }
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"  # for browsers without CSP frame-ancestors
    return headers


async def desktop_visit(request: web.Request) -> web.StreamResponse:
    """One visit's history, compact, for a frame in an agent desktop (signed link only)."""
    visit_id = path_id(request, "visitID")
    q = parse_query(request, DesktopQuery)
    expected = _signature(_key(request), visit_id, q.exp)
    if not hmac.compare_digest(expected, q.sig):
        raise Forbidden("this link is not valid", details=[{"field": "sig", "message": "bad"}])
    if q.exp * 1000 < now_ms():
        raise Forbidden("this link has expired", details=[{"field": "exp", "message": "expired"}])
    reads = request.app[GWE_HISTORY]
    visit = await reads.visit(visit_id, pages=EMBEDDED_MAX, events=EMBEDDED_MAX)
    if visit is None:  # purged since the link was made
        raise NotFound(f"no visit {visit_id}", details=[{"field": "visitID", "message": "unknown"}])
    identities = await reads.identities_of_visit(visit_id)
    others: list[dict[str, Any]] = []
    for identity in identities[:1]:
        found, _ = await reads.identity_visits(
            identity["identityId"], VisitFilters(), None, OTHER_VISITS_SHOWN + 1
        )
        others = [v for v in found if v["visitId"] != visit_id][:OTHER_VISITS_SHOWN]
    html = (
        request.app[TEMPLATES]
        .get_template("desktop.html")
        .render(
            visit=visit,
            live=request.app[REGISTRY].get(visit_id) is not None,
            identities=identities,
            others=others,
            utc=utc_time,
            self_url=str(request.rel_url),
            css=str(request.app.router["console-static"].url_for(filename="console.css")),
        )
    )
    response = web.Response(text=html, content_type="text/html")
    response.headers.update(frame_headers(request.app[SETTINGS].frame_ancestors))
    return response

"""Browser endpoints that keep a visitor's identifiers without third-party cookies.

- ``POST /visitor-id``: the engine, served under the site's own domain, keeps the long-lived
  globalVisitID in a first-party, HttpOnly cookie it sets itself (script-written cookies are
  capped at 7 days by Safari); the tracker reads the value from the answer.
- ``POST /links``: a single-use token for the visit, which the tracker adds to a link or form
  to a linked domain; ``POST /links/redeem``: the tracker on that domain gets the same visit
  back (``privacy.links``). Anything wrong is refused, and that tracker starts a new visit.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .. import constants as C
from ..monitoring.ingest import now_ms
from ..privacy.links import Link, LinkRefused, LinkTokens, on_linked_domain
from .errors import Forbidden, HTTPError, InvalidInput, NotFound
from .origins import ORIGIN
from .parsing import BEACON_TYPES, parse_json
from .state import INGESTOR, REGISTRY, SETTINGS
from .throttling import GUARD

LINKS = web.AppKey("link_tokens", LinkTokens)
VISITOR_COOKIE = "_eng_visitor"  # HttpOnly: the globalVisitID, set by the engine

ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]


class VisitorIdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    globalVisitID: ID | None = Field(
        None, description="the tracker's own, kept when the engine's cookie is not there yet"
    )


class VisitorIdOut(BaseModel):
    globalVisitID: str
    returning: bool = Field(description="the engine's cookie was there already")
    cookie: str = Field(description="the cookie's name (HttpOnly: scripts cannot read it)")


class ForgetOut(BaseModel):
    cookie: str
    deleted: bool


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitID: ID
    globalVisitID: ID
    key: ID | None = Field(None, description="the visitor's chat session key, carried along")


class LinkOut(BaseModel):
    token: str
    expiresAt: int = Field(description="epoch ms")


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=100)


class RedeemOut(BaseModel):
    visitID: str
    globalVisitID: str
    key: str | None


class Refused(HTTPError):
    def __init__(self, refusal: LinkRefused) -> None:
        super().__init__(refusal.message, details=[{"field": "token", "message": refusal.code}])
        self.status, self.code = refusal.status, refusal.code


async def post_visitor_id(request: web.Request) -> web.StreamResponse:
    """The globalVisitID in the engine's first-party cookie (made, or renewed for two years)."""
    settings = request.app[SETTINGS]
    if not settings.first_party_cookie:
        raise NotFound("first_party_cookie is off", details=[{"field": "path", "message": "off"}])
    body = await parse_json(request, VisitorIdIn, BEACON_TYPES)
    held = request.cookies.get(VISITOR_COOKIE, "")
    gvid = held if _is_id(held) else body.globalVisitID or uuid.uuid4().hex.upper()
    out = {"globalVisitID": gvid, "returning": _is_id(held), "cookie": VISITOR_COOKIE}
    response = web.json_response(out)
    response.set_cookie(
        VISITOR_COOKIE, gvid, max_age=C.VISITOR_COOKIE_MAX_AGE_S, path="/", httponly=True,
        samesite="Lax", domain=settings.first_party_cookie_domain,
        secure=request.app[GUARD].proxies.is_tls(request),
    )  # fmt: skip
    response.headers["Access-Control-Allow-Credentials"] = "true"  # a sibling subdomain
    return response


async def forget_visitor_id(request: web.Request) -> web.StreamResponse:
    """The visitor withdrew consent: the engine's cookie goes (scripts cannot delete it)."""
    settings = request.app[SETTINGS]
    response = web.json_response({"cookie": VISITOR_COOKIE, "deleted": True})
    response.del_cookie(VISITOR_COOKIE, path="/", domain=settings.first_party_cookie_domain)
    response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


def _is_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789ABCDEF" for c in value)


def _linked(request: web.Request) -> list[str]:
    domains = request.app[SETTINGS].linked_domains
    if not domains:
        raise NotFound("no linked_domains are set", details=[{"field": "path", "message": "off"}])
    origin = request[ORIGIN]
    if not on_linked_domain(origin, domains):
        raise Forbidden(
            f"origin {origin!r} is not on a linked domain",
            details=[{"field": "Origin", "message": "not in linked_domains"}],
        )
    return domains


async def post_link(request: web.Request) -> web.StreamResponse:
    """A single-use token that carries this visit to a linked domain."""
    _linked(request)
    body = await parse_json(request, LinkIn, BEACON_TYPES)
    visit = request.app[REGISTRY].get(body.visitID)
    shared = request.app[INGESTOR].shared
    if visit is None and shared is not None:  # several nodes: its events went to another
        visit = await shared.visit(body.visitID)
    if visit is None:
        raise NotFound(
            f"visit {body.visitID} is not live",
            details=[{"field": "visitID", "message": "not live"}],
        )
    if visit.global_visit_id != body.globalVisitID:
        raise InvalidInput(
            "globalVisitID is not the visit's",
            details=[{"field": "globalVisitID", "message": "not the visit's"}],
        )
    link = Link(body.visitID, body.globalVisitID, body.key, request[ORIGIN])
    token, expires = await request.app[LINKS].issue(link, now_ms())
    return web.json_response({"token": token, "expiresAt": expires})


async def redeem_link(request: web.Request) -> web.StreamResponse:
    """The visit a token stands for, once, to a page on a linked domain."""
    _linked(request)
    body = await parse_json(request, RedeemIn, BEACON_TYPES)
    try:
        link = await request.app[LINKS].redeem(body.token, now_ms())
    except LinkRefused as exc:
        raise Refused(exc) from exc
    out = {"visitID": link.visit_id, "globalVisitID": link.global_visit_id, "key": link.key}
    return web.json_response(out)

"""The monitoring endpoint the tracker posts events to, and the tracker script itself."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from ..monitoring.models import EventBatch
from ..monitoring.tracker import TrackerScript
from .parsing import BEACON_TYPES, parse, read_body
from .state import INGESTOR, LIFECYCLE, TRACKER

EVENT_BATCH = TypeAdapter(EventBatch)


async def post_events(request: web.Request) -> web.StreamResponse:
    """Take a batch of tracker events (JSON, or text/plain from sendBeacon)."""
    batch = parse(EVENT_BATCH, await read_body(request, BEACON_TYPES))
    app = request.app  # a property: read once
    ingestor = app[INGESTOR]
    if ingestor.shared is None:
        fresh, duplicates = ingestor.ingest(batch.events)
        if fresh:
            app[LIFECYCLE].decide(fresh)  # may start an attempt: offer, then push
    else:  # one of several nodes (engagement.cluster): the visit's log is in Redis
        fresh, duplicates = await ingestor.shared.ingest(batch.events)
        if fresh:
            await app[LIFECYCLE].decide_shared(fresh)
    body = b'{"accepted":%d,"duplicates":%d}' % (len(fresh), duplicates)  # two ints: no encoder
    return web.Response(body=body, content_type="application/json")


async def get_tracker(request: web.Request) -> web.StreamResponse:
    """The tracker script, minified; revalidated by ETag so config changes reach pages."""
    return _serve_script(request, request.app[TRACKER].script)


async def get_crossdomain(request: web.Request) -> web.StreamResponse:
    """Link decoration for linked_domains and Widgets' chat session, loaded when a page needs
    them."""
    return _serve_script(request, request.app[TRACKER].crossdomain)


async def get_engage(request: web.Request) -> web.StreamResponse:
    """Invitations and hand-off, which the tracker loads with a visit's first invitation."""
    return _serve_script(request, request.app[TRACKER].engage)


def _serve_script(request: web.Request, script: TrackerScript) -> web.StreamResponse:
    headers = {
        "Content-Type": "application/javascript; charset=utf-8",
        "Cache-Control": "no-cache",
        "ETag": script.etag,
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("If-None-Match") == script.etag:
        return web.Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        return web.Response(body=script.gzipped, headers={**headers, "Content-Encoding": "gzip"})
    return web.Response(body=script.body, headers=headers)

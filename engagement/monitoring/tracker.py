"""The tracker script as served: its parts joined, configured, minified, gzipped once, cached
by ETag.

The tracker's source is small files by concern in ``tracker/`` (see ``tracker/README.md``). They
share one scope: joined in ``PARTS`` order inside one function that receives the window, the
document and the engine's config, so nothing leaks into the page but ``_gt``. No build step: the
join happens here, when the engine starts or its configuration changes.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import rjsmin

from .. import constants as C

PARTS = (
    "core.js",  # helpers, base URL, endpoints, IDs
    "storage.js",  # localStorage that survives being disabled
    "cookies.js",  # visit and visitor cookies, parent-domain probe
    "consent.js",  # consent mode: nothing stored nor sent before consent
    "visit.js",  # visit and page state, VisitStarted, PageEntered
    "events.js",  # the GWE envelope
    "transport.js",  # buffer, batches, retry with backoff, localStorage mirror, beacon
    "focus.js",  # focused time, FocusChanged, declared events
    "spa.js",  # single-page app navigation
    "bus.js",  # the page's bus
    "sanitize.js",  # appended HTML never runs
    "content.js",  # gpe.appendContent / removeContent
    "push.js",  # the SSE stream and its channels
    "invitations.js",  # loading engage.js, the focus tab
    "arrival.js",  # a linked domain's visit, the engine's visitor cookie, before any event
    "commands.js",  # the _gt command queue
    "engage-api.js",  # the named interface engage.js uses
    "start.js",  # takes over _gt, listens to the page
)
# Routes the scripts call, by the names they use: (their name, the route table's name).
ENDPOINTS = (
    ("tracker", "tracker"),
    ("events", "events"),
    ("stream", "stream"),
    ("engage", "engage-script"),
    ("disposition", "disposition"),
    ("callbacks", "callbacks"),
    ("chats", "chats"),
    ("crossdomain", "crossdomain-script"),
    ("visitorForget", "visitor-id-forget"),
)
# Routes crossdomain.js calls (passed in when it is served, like the tracker's).
CROSSDOMAIN_ENDPOINTS = (
    ("visitorId", "visitor-id"),
    ("linkRedeem", "link-redeem"),
    ("linkIssue", "link-issue"),
    ("chatSave", "chat-session-save"),
    ("chatLoad", "chat-session-load"),
)


@dataclass(frozen=True, slots=True)
class TrackerScript:
    body: bytes  # minified JavaScript
    gzipped: bytes
    etag: str


def source(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def joined() -> str:
    """The tracker's parts in one function of (window, document, config); read once."""
    parts = "\n".join(source(f"tracker/{name}") for name in PARTS)
    return (
        "(function (w, d, CFG) {\n'use strict';\n"
        + parts
        + "\ntry { start(); } catch (e) { warn('tracker failed to start', e); }\n})"
    )


def constants() -> dict[str, Any]:
    """The engine's numbers and paths the scripts use, so that none is repeated in them."""
    from ..api.routes import ROUTES  # the route table imports this module's users: load late

    paths = {route.name: route.path for route in ROUTES}
    return {
        "paths": {name: paths[route] for name, route in ENDPOINTS},
        "cookiePrefix": C.TRACKER_COOKIE_PREFIX,
        "gvidCookieMaxAgeS": C.VISITOR_COOKIE_MAX_AGE_S,
        "visitCookieRefreshS": C.VISIT_COOKIE_REFRESH_S,
        "visitTimeoutS": C.VISIT_IDLE_TIMEOUT_S,
        "flushDelayMs": C.TRACKER_FLUSH_DELAY_MS,
        "maxBufferEvents": C.TRACKER_BUFFER_EVENTS,
        "retryBaseMs": C.TRACKER_RETRY_BASE_MS,
        "retryMaxMs": C.TRACKER_RETRY_MAX_MS,
        "retryJitterMs": C.TRACKER_RETRY_JITTER_MS,
        "keepaliveMaxBytes": C.TRACKER_KEEPALIVE_MAX_BYTES,
        "dispositionRetries": C.TRACKER_DISPOSITION_RETRIES,
        # The engine's bounds, so the tracker cuts what the engine would refuse.
        "maxDataBytes": C.MAX_EVENT_DATA_BYTES,
        "batchEvents": C.TRACKER_BATCH_EVENTS,
        "maxUrlChars": C.MAX_URL_CHARS,
        "maxTitleChars": C.MAX_TITLE_CHARS,
        "maxLanguageChars": C.MAX_LANGUAGE_CODE_CHARS,
        "offerTimeoutS": C.OFFER_TIMEOUT_S,
        "formHoldS": C.REGISTRATION_FORM_EXPIRATION_S,
        "prepareWaitMs": C.TRACKER_PREPARE_WAIT_MS,
    }


def _packed(text: str) -> TrackerScript:
    body = rjsmin.jsmin(text).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return TrackerScript(body, gzip.compress(body, compresslevel=9, mtime=0), etag)


def build_engage() -> TrackerScript:
    """engage.js: invitations and hand-off, loaded by the tracker with the first invitation."""
    return _packed(source("engage.js"))


def build_crossdomain() -> TrackerScript:
    """crossdomain.js: link decoration for linked_domains and Widgets' chat session, loaded by
    the tracker when a page needs them; its routes' paths passed in."""
    from ..api.routes import ROUTES  # as in constants()

    paths = {route.name: route.path for route in ROUTES}
    mine = {name: paths[route] for name, route in CROSSDOMAIN_ENDPOINTS}
    return _packed(source("crossdomain.js").replace("__CROSSDOMAIN_PATHS__", json.dumps(mine)))


def build_tracker(config: dict[str, Any]) -> TrackerScript:
    """The script with the engine's constants and ``config`` (settings) passed in, ready to
    serve; an absent (None) setting reads as unset."""
    merged = {k: v for k, v in {**constants(), **config}.items() if v is not None}
    return _packed(
        joined() + "(window, document, " + json.dumps(merged, separators=(",", ":")) + ");\n"
    )


class ServedTracker:
    """The script being served now; rebuilt when its configuration changes."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)
        self.engage = build_engage()
        self.crossdomain = build_crossdomain()

    def rebuild(self, config: dict[str, Any]) -> None:
        self.script = build_tracker(config)

"""Typed application state shared by the handlers."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ..audit import AuditLog
from ..availability import AvailabilityBoard
from ..cluster.redis import RedisLink
from ..invite import Invites
from ..launchers.outbox import CallbackOutbox
from ..launchers.registry import Launchers
from ..lifecycle.owner import Lifecycle
from ..monitoring.ingest import Ingestor
from ..monitoring.tracker import ServedTracker
from ..notifications.hub import PushHub
from ..notifications.service import Notifier
from ..pacing.pacer import Pacer
from ..settings import Settings
from ..strategy.library import StrategyLibrary
from ..visits.gwe_reads import GweHistory
from ..visits.registry import VisitRegistry
from ..visits.store import History
from ..webhooks import Background
from .origins import OriginPolicy

SETTINGS = web.AppKey("settings", Settings)
ORIGINS = web.AppKey("origins", OriginPolicy)
HISTORY = web.AppKey("history", History)
REGISTRY = web.AppKey("registry", VisitRegistry)
INGESTOR = web.AppKey("ingestor", Ingestor)
TRACKER = web.AppKey("tracker", ServedTracker)
LIBRARY = web.AppKey("library", StrategyLibrary)
AVAILABILITY = web.AppKey("availability", AvailabilityBoard)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LAUNCHERS = web.AppKey("launchers", Launchers)
HUB = web.AppKey("hub", PushHub)
NOTIFIER = web.AppKey("notifier", Notifier)
INVITES = web.AppKey("invites", Invites)
BACKGROUND = web.AppKey("background", Background)
CLIENT = web.AppKey("client", aiohttp.ClientSession)
OUTBOX = web.AppKey("outbox", CallbackOutbox)
GWE_HISTORY = web.AppKey("gwe_history", GweHistory)
PACER = web.AppKey("pacer", Pacer)
AUDIT = web.AppKey("audit", AuditLog)
REDIS = web.AppKey("redis", RedisLink)  # only when redis_url is set


def origins_of(request: web.Request) -> OriginPolicy:
    return request.app[ORIGINS]

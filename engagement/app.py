"""The application factory: nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from .api.auth import API_KEYS
from .api.errors import error_middleware
from .api.openapi import build_openapi
from .api.origins import OriginPolicy
from .api.routes import ROUTES, setup_routes
from .api.site import OPENAPI
from .api.state import HISTORY, INGESTOR, ORIGINS, REGISTRY, SETTINGS, TRACKER
from .monitoring.ingest import Ingestor
from .monitoring.tracker import build_tracker
from .scheduler import jobs, start_scheduler
from .settings import Settings
from .visits.registry import VisitRegistry
from .visits.store import SQLiteHistory

log = logging.getLogger("engagement.app")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the engine; resources open when the app starts and close when it stops."""
    settings = settings or Settings()
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    origins = list(settings.allowed_origins)
    if settings.public_url:
        origins.append(_origin_of(settings.public_url))
    app[ORIGINS] = OriginPolicy(origins)
    app[API_KEYS] = [k.encode() for k in settings.resolved_api_keys()]
    app[TRACKER] = build_tracker(
        {
            "visitTimeoutS": settings.visit_timeout_s,
            "cookieDomain": settings.cookie_domain,
            "cookiePrefix": "_eng_",
            "flushDelayMs": 50,
            "maxBufferEvents": 500,
            "declaredEvents": [],
        }
    )
    app[OPENAPI] = build_openapi(ROUTES)
    history = SQLiteHistory(settings.db_path, settings.history_flush_interval_s)
    registry = VisitRegistry(history, settings.visit_timeout_s)
    app[HISTORY] = history
    app[REGISTRY] = registry
    app[INGESTOR] = Ingestor(registry)
    setup_routes(app, demo=settings.demo)
    app.cleanup_ctx.append(_engine)
    return app


async def _engine(app: web.Application) -> AsyncIterator[None]:
    settings, history = app[SETTINGS], app[HISTORY]
    await history.open()
    scheduler = start_scheduler(jobs(app[REGISTRY], history, settings.retention_days))
    log.info("engine ready: history in %s", settings.db_path)
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
        await history.close()

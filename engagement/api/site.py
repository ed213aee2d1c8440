"""Meta endpoints and the demo site."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from .state import HISTORY, OUTBOX, REDIS, REGISTRY, SETTINGS

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
READY_TIMEOUT_S = 2.0  # a store slower than this to answer SELECT 1 is not ready
OPENAPI: web.AppKey[dict[str, object]] = web.AppKey("openapi", dict)


async def get_openapi(request: web.Request) -> web.StreamResponse:
    """This API's OpenAPI 3.1 document."""
    return web.json_response(request.app[OPENAPI])


async def get_health(request: web.Request) -> web.StreamResponse:
    """Liveness: the engine answers, with the live visit count and queued history rows."""
    return web.json_response(
        {
            "status": "ok",
            "liveVisits": len(request.app[REGISTRY]),
            "historyPending": request.app[HISTORY].pending,
        }
    )


async def get_ready(request: web.Request) -> web.StreamResponse:
    """Readiness: 200 when the stores (and Redis, if set) answer, history writes succeed and
    the history and callback queues are within their bounds; 503 otherwise, saying which
    check failed."""
    app = request.app
    history, outbox, settings = app[HISTORY], app[OUTBOX], app[SETTINGS]
    checks: dict[str, str] = {}
    for name, store in (("history", history), ("outbox", outbox)):
        try:
            # A database that hangs (a network cut) is as unready as one that refuses.
            await asyncio.wait_for(store.db.fetchone("SELECT 1"), READY_TIMEOUT_S)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"failed: no answer within {READY_TIMEOUT_S:g} s"
        except Exception as exc:  # any failure means not ready; say which
            checks[name] = f"failed: {exc or type(exc).__name__}"
    if REDIS in app:
        try:
            await app[REDIS].ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"failed: {exc or type(exc).__name__}"
    error = history.write_error
    checks["historyWrites"] = f"failing: {error}" if error else "ok"
    checks["historyQueue"] = _within(history.pending, settings.ready_max_history_queue, "rows")
    checks["callbackQueue"] = _within(outbox.queued, settings.ready_max_callback_queue, "callbacks")
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


def _within(queued: int, bound: int, what: str) -> str:
    return "ok" if queued <= bound else f"{queued} {what} waiting, more than {bound}"


async def redirect_to_demo(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/demo/")


async def demo_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(DEMO_DIR / "index.html")

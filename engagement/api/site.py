"""Meta endpoints and the demo site."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .state import HISTORY, OUTBOX, REGISTRY

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
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
    """Readiness: 200 when the store answers, 503 (with what failed) when it does not."""
    checks: dict[str, str] = {}
    for name, db in (("history", request.app[HISTORY].db), ("outbox", request.app[OUTBOX].db)):
        try:
            async with db.execute("SELECT 1") as cursor:
                await cursor.fetchone()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks[name] = f"failed: {exc or type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def redirect_to_demo(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/demo/")


async def demo_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(DEMO_DIR / "index.html")

"""Meta endpoints and the demo site."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .state import HISTORY, REGISTRY

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


async def redirect_to_demo(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/demo/")


async def demo_index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(DEMO_DIR / "index.html")

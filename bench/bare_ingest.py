"""The bare aiohttp baseline for bench/ingest.py: the same HTTP work, none of the engine's.

One POST handler at the engine's path that reads the body, ``json.loads`` it, checks it has a
non-empty ``events`` list and answers ``{"accepted": n, "duplicates": 0}``: no validation, no
state, no middleware. ``GET /health`` for readiness.

It is served the way the engine is (engagement/cli.py, engagement/logs.py): ``web.run_app``
with ``print=None`` and the default access logger ``aiohttp.access`` set to WARNING, so aiohttp
computes ``_logging_enabled = False`` once per connection and logs nothing per request, exactly
as in the engine; same request size limit (256 KB); same Python, same aiohttp, default asyncio
event loop (the engine does not use uvloop).

    .venv/bin/python bench/bare_ingest.py --port 9182 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import json
import logging

from aiohttp import web

MAX_BODY_BYTES = 256 * 1024  # engagement.constants.MAX_BODY_BYTES


async def post_events(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    try:
        data = json.loads(body)
    except ValueError:
        return web.json_response({"error": "invalid_input"}, status=400)
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        return web.json_response({"error": "invalid_input"}, status=400)
    return web.json_response({"accepted": len(events), "duplicates": 0})


async def get_health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/monitoring/events", post_events)
    app.router.add_get("/health", get_health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As engagement.logs.setup_logging(level="WARNING") leaves it for the engine.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()

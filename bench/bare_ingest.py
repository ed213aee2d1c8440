"""The bare aiohttp baseline for bench/ingest.py: the same HTTP work, none of the engine's.

One POST handler at the engine's path that reads the body, ``json.loads`` it, checks it has a
non-empty ``events`` list and answers ``{"accepted": n, "duplicates": 0}``: no validation, no
state, no middleware. ``GET /health`` for readiness.

It is served the way the engine is (engagement/cli.py, engagement/logs.py): ``web.run_app``
with ``print=None`` and the default access logger ``aiohttp.access`` set to WARNING, so aiohttp
computes ``_logging_enabled = False`` once per connection and logs nothing per request, exactly
as in the engine; same request size limit (256 KB); same Python, same aiohttp. ``--stack``
picks the loop and the JSON library: ``fast`` is what the engine ships (uvloop, orjson).

``--validate engine`` makes it a ceiling rather than a baseline: the body is validated by the
engine's own model of the tracker's envelope (``engagement.api.monitoring.EVENT_BATCH``, as the
engine's handler calls it) instead of being only parsed, and nothing else is done. What that
app answers per second is the most an engine that validates with pydantic can answer, whatever
it does with the events (bench/ingest.py prints it as the validation ceiling).

    .venv/bin/python bench/bare_ingest.py --port 9182 [--host 127.0.0.1] [--stack fast]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

MAX_BODY_BYTES = 256 * 1024  # engagement.constants.MAX_BODY_BYTES


LOADS: Callable[[bytes], Any] = json.loads
DUMPS: Callable[[Any], str] = json.dumps


async def post_events(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    try:
        data = LOADS(body)
    except ValueError:
        return web.json_response({"error": "invalid_input"}, status=400, dumps=DUMPS)
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        return web.json_response({"error": "invalid_input"}, status=400, dumps=DUMPS)
    return web.json_response({"accepted": len(events), "duplicates": 0}, dumps=DUMPS)


def validated_handler() -> Callable[[web.Request], Any]:
    """The engine's validation alone: its model, its strictness, nothing done with the events
    (imported here: the plain baseline does not load the engine)."""
    from engagement.api.errors import HTTPError
    from engagement.api.monitoring import EVENT_BATCH
    from engagement.api.parsing import parse

    async def post_events_validated(request: web.Request) -> web.StreamResponse:
        try:
            batch = parse(EVENT_BATCH, await request.read())
        except HTTPError as exc:
            return exc.response()
        return web.json_response({"accepted": len(batch.events), "duplicates": 0}, dumps=DUMPS)

    return post_events_validated


async def get_health(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def create_app(validate: str = "none") -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    handler = validated_handler() if validate == "engine" else post_events
    app.router.add_post("/monitoring/events", handler)
    app.router.add_get("/health", get_health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--stack",
        choices=["plain", "fast"],
        default="plain",
        help="plain: asyncio's loop and json; fast: uvloop and orjson, as the engine ships",
    )
    parser.add_argument(
        "--validate",
        choices=["none", "engine"],
        default="none",
        help="none: parse the JSON only (the baseline); engine: validate it with the engine's "
        "model and do nothing else (the most a validating engine can answer)",
    )
    args = parser.parse_args()
    loop_factory = None
    if args.stack == "fast":
        global LOADS, DUMPS
        import orjson
        import uvloop

        LOADS = orjson.loads
        DUMPS = lambda obj: orjson.dumps(obj).decode()  # noqa: E731
        loop_factory = uvloop.new_event_loop
    # As engagement.logs.setup_logging(level="WARNING") leaves it for the engine.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    loop = loop_factory() if loop_factory is not None else None
    web.run_app(create_app(args.validate), host=args.host, port=args.port, print=None, loop=loop)


if __name__ == "__main__":
    main()

"""The bare aiohttp baseline for bench/push.py: SSE streams held the plain way, none of the
engine's work.

``GET /notifications/stream?visitID=&pageID=`` prepares a ``text/event-stream`` response,
writes a ``retry:`` line, then waits on its own ``asyncio.Queue`` with a heartbeat timeout
(``asyncio.wait_for``, as the engine's handler does) and writes each frame, or ``: ping`` on
timeout. The queues of a visit are kept in a dict so that
``POST /server/data/notification/notify/{visitID}`` can fan out: it reads the JSON list of
messages, encodes each once as an SSE frame and puts it into the visit's queues (404 when the
visit has no stream). No validation, no origin check, no API key, no middleware, no buffer for
reconnects. ``GET /health`` answers ``{"status": "ok", "openStreams": n}``.

It is served the way the engine is (engagement/cli.py, engagement/logs.py): ``web.run_app``
with ``print=None`` and the default access logger ``aiohttp.access`` set to WARNING; same
Python, same aiohttp, default asyncio event loop.

    .venv/bin/python bench/bare_sse.py --port 9183 [--host 127.0.0.1] [--heartbeat-s 15]

For bench/pauses.py, ``--probe`` adds engine_probe.py's probes (loop stalls, collections,
its signals; ``PROBE_OUT``) and ``POST /monitoring/events``, which reads and parses each
batch and answers how many events it held; ``--uvloop`` runs it on the engine's loop;
``--gc-policy`` gives it the engine's collection policy (engagement/gcpolicy.py: survivors
frozen, a young pass every 50 ms), so that what is left is the load's own stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource

from aiohttp import web

RETRY_MS = 2000  # engagement.constants.PUSH_RETRY_MS
MAX_BODY_BYTES = 256 * 1024  # engagement.constants.MAX_BODY_BYTES

QUEUES = web.AppKey("queues", dict)
HEARTBEAT = web.AppKey("heartbeat_s", float)
SEQ = web.AppKey("seq", list)


async def stream(request: web.Request) -> web.StreamResponse:
    visit_id = request.query.get("visitID", "")
    if not visit_id:
        return web.json_response({"error": "invalid_input"}, status=400)
    heartbeat_s = request.app[HEARTBEAT]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    queues: dict[str, list[asyncio.Queue[bytes]]] = request.app[QUEUES]
    queues.setdefault(visit_id, []).append(queue)
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        while True:
            try:
                frame = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                frame = b": ping\n\n"
            await response.write(frame)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        mine = queues.get(visit_id)
        if mine is not None:
            mine.remove(queue)
            if not mine:
                del queues[visit_id]
    return response


async def notify(request: web.Request) -> web.StreamResponse:
    visit_id = request.match_info["visitID"]
    try:
        messages = json.loads(await request.read())
    except ValueError:
        return web.json_response({"error": "invalid_input"}, status=400)
    if not isinstance(messages, list) or not messages:
        return web.json_response({"error": "invalid_input"}, status=400)
    targets = request.app[QUEUES].get(visit_id)
    if not targets:
        return web.json_response({"error": "not_found"}, status=404)
    seq = request.app[SEQ]
    for message in messages:
        seq[0] += 1
        payload = json.dumps(
            {"id": seq[0], "channel": message.get("channel"), "data": message.get("data")},
            separators=(",", ":"),
        )
        frame = f"id: {seq[0]}\nevent: message\ndata: {payload}\n\n".encode()
        for queue in targets:
            queue.put_nowait(frame)
    return web.Response(status=200)


async def events(request: web.Request) -> web.StreamResponse:
    try:
        batch = json.loads(await request.read())
    except ValueError:
        return web.json_response({"error": "invalid_input"}, status=400)
    accepted = len(batch.get("events", [])) if isinstance(batch, dict) else 0
    return web.json_response({"accepted": accepted, "duplicates": 0})


async def health(request: web.Request) -> web.StreamResponse:
    open_streams = sum(len(q) for q in request.app[QUEUES].values())
    return web.json_response({"status": "ok", "openStreams": open_streams})


def create_app(heartbeat_s: float) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[QUEUES] = {}
    app[HEARTBEAT] = heartbeat_s
    app[SEQ] = [0]
    app.router.add_get("/notifications/stream", stream)
    app.router.add_post("/server/data/notification/notify/{visitID}", notify)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--heartbeat-s", type=float, default=15.0)
    parser.add_argument("--probe", action="store_true", help="bench/pauses.py's baseline")
    parser.add_argument("--uvloop", action="store_true", help="the engine's event loop")
    parser.add_argument("--gc-policy", action="store_true", help="the engine's collection policy")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"RLIMIT_NOFILE {soft}/{hard}", flush=True)
    # As engagement.logs.setup_logging(level="WARNING") leaves it for the engine.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(args.heartbeat_s)
    if args.probe:
        import gc

        import engine_probe

        gc.callbacks.append(engine_probe.PROBE.on_gc)
        engine_probe.attach(app)
        app.router.add_post("/monitoring/events", events)
    if args.gc_policy:
        from engagement import gcpolicy

        gcpolicy.install(app)
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host=args.host, port=args.port, print=None, loop=loop)


if __name__ == "__main__":
    main()

"""The real engine with its ingest cut after one stage, for ``bench/instructions.py --stages``:
what each stage of ``POST /monitoring/events`` costs, as the difference between two cuts.

    .venv/bin/python bench/engine_stages.py STAGE    (settings as for ``engagement serve``)

The stages, each doing what the ones before it do:

- ``read``: the engine's middlewares, origin check and route, then the body read; the answer
  counts the body's events without parsing it (the bench's bodies: one ``"eventID"`` each);
- ``validate``: the body validated by the engine's model (``EVENT_BATCH``);
- ``build``: the events built (server time, categories, field filter: ``Ingestor.build``);
- ``registry``: applied to the live visits (``Ingestor.ingest``), with no history written;
- ``history``: and their rows queued, built and written by the history (SQLite);
- ``decide``: and the strategies asked: the whole engine, as ``engagement serve`` runs it.

Nothing of the engine is changed for this but what this process patches before it starts
(the events route's handler in the route table, ``Lifecycle.decide``, ``History.record``), as
bench/engine_probe.py attaches its probes: the product has no switch for it.
"""

from __future__ import annotations

import sys

from aiohttp import web

STAGES = ("read", "validate", "build", "registry", "history", "decide")


def patch(stage: str) -> None:
    """Cut the engine's ingest after ``stage`` (before the route table is imported)."""
    import dataclasses

    from engagement.api import monitoring
    from engagement.api.parsing import BEACON_TYPES, parse, read_body
    from engagement.api.routes import ROUTES
    from engagement.api.state import INGESTOR
    from engagement.lifecycle.owner import Lifecycle
    from engagement.visits.store import History

    if stage in ("read", "validate", "build"):
        whole = monitoring.post_events

        async def post_events(request: web.Request) -> web.StreamResponse:
            body = await read_body(request, BEACON_TYPES)
            if stage == "read":
                count = body.count(b'"eventID"')
            else:
                events = parse(monitoring.EVENT_BATCH, body).events
                if stage == "build":
                    request.app[INGESTOR].build(events)
                count = len(events)
            answer = b'{"accepted":%d,"duplicates":0}' % count
            return web.Response(body=answer, content_type="application/json")

        post_events.__doc__ = whole.__doc__  # the route table documents the route by it
        (i,) = (i for i, route in enumerate(ROUTES) if route.name == "events")
        ROUTES[i] = dataclasses.replace(ROUTES[i], handler=post_events)
    if stage in ("read", "validate", "build", "registry"):
        History.record = lambda self, visit, events: None  # type: ignore[method-assign]
    if stage != "decide":
        Lifecycle.decide = lambda self, events: []  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in STAGES:
        print(f"usage: engine_stages.py {{{','.join(STAGES)}}}", file=sys.stderr)
        return 2
    patch(argv[0])
    from engagement.cli import main as serve

    return serve(["serve"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

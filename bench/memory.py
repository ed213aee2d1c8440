"""Memory per live visit, and the live-visit cap holding RSS down.

Goal (issue 10, "Memory is bounded"): under 2 KB per live visit at 200,000 visits, and RSS
bounded by the cap however many visits arrive. Each figure comes from a fresh child process
(RSS never shrinks back, so phases cannot share one):

- ``bare``: a dict holding the same ids per visit (visitID -> (globalVisitID, pageID)), built
  from the same parsed batches: the floor any engine pays for knowing who is live.
- ``engine``: 200,000 visits through the real ingest path (the tracker's JSON body, pydantic
  ``EventBatch``, ``Ingestor.ingest``, ``VisitRegistry``) with a history sink that keeps
  nothing (it takes what the writer takes once it wrote it), so the figure is the live state
  alone. Each visit is what the tracker sends on a landing: ``VisitStarted`` and
  ``PageEntered`` with a real user agent (50 variants), title and referrer, on one of 1,000
  product pages.
- ``capped``: the same 200,000 visits with ``max_live_visits`` = 50,000 and visits evictable
  once idle (``evict_idle_after_s`` = 0): live visits stay at the cap, the oldest are closed
  to history, and the peak RSS stays that of the cap, not of 200,000 visits.

    .venv/bin/python bench/memory.py [--visits 200000] [--cap 50000]

Per visit = (RSS after - RSS before) / visits, RSS from /proc/self/status, after a full
garbage collection. Exit status: 0 goal met, 1 over 2 KB per visit or RSS past the cap's.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

GOAL_BYTES = 2048
BATCH_VISITS = 25  # 50 events a request, as the tracker's largest batches
# Visitors land on one of PAGES product pages, with one of BROWSERS user agents: URLs, titles
# and user agents repeat across visitors as on a real site (the engine shares such texts).
PAGES = 1000
BROWSERS = 50
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.{}.0 Safari/537.36"
)


def rss_kib() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def hex_id() -> str:
    return uuid.uuid4().hex.upper()


def landing(n: int) -> list[dict[str, Any]]:
    visit, gvid, page, product = hex_id(), hex_id(), hex_id(), n % PAGES
    base = {"visitID": visit, "globalVisitID": gvid, "pageID": page, "timestamp": 1_700_000_000,
            "url": f"https://www.shop.example/products/workhorse-{product}?ref=mail",
            "category": "", "languageCode": "en-GB", "eventType": "SYSTEM"}  # fmt: skip
    return [
        {**base, "eventName": "VisitStarted", "eventID": hex_id(),
         "data": {"timezoneOffset": -60, "returning": False,
                  "userAgent": USER_AGENT.format(n % BROWSERS)}},
        {**base, "eventName": "PageEntered", "eventID": hex_id(),
         "data": {"title": f"Workhorse {product} - Shop", "referrer": "https://www.search.example/",
                  "timezoneOffset": -60, "utm": {}, "focused": True}},
    ]  # fmt: skip


def bodies(visits: int) -> list[bytes]:
    out = []
    for start in range(0, visits, BATCH_VISITS):
        count = min(BATCH_VISITS, visits - start)
        events = [e for n in range(start, start + count) for e in landing(n)]
        out.append(json.dumps({"events": events}).encode())
    return out


def child(mode: str, visits: int, cap: int) -> dict[str, Any]:
    from engagement.monitoring.ingest import Ingestor
    from engagement.monitoring.models import EventBatch
    from engagement.visits.model import Event, Visit
    from engagement.visits.registry import VisitRegistry
    from engagement.visits.store import _take_dirty_pages

    class NoHistory:
        """Drops rows at once, as the history writer does once it wrote them (every 0.5 s)."""

        def record(self, visit: Visit, events: list[Event]) -> None:
            _take_dirty_pages(visit)

        def record_closed(self, visit: Visit) -> None:
            return None

    adapter = TypeAdapter(EventBatch)
    payloads = bodies(visits)  # made before the first reading: not part of the figure
    gc.collect()
    before = rss_kib()
    kept: dict[str, tuple[str, str]] = {}
    if mode == "bare":
        for body in payloads:
            for e in adapter.validate_json(body).events:
                kept[e["visitID"]] = (e["globalVisitID"], e["pageID"])
        live = len(kept)
    else:
        if mode == "capped":
            registry = VisitRegistry(NoHistory(), 1800, max_visits=cap, evict_idle_after_s=0)
        else:
            registry = VisitRegistry(NoHistory(), 1800)
        ingestor = Ingestor(registry)
        for body in payloads:
            ingestor.ingest(adapter.validate_json(body).events)
        live = len(registry)
    gc.collect()
    after = rss_kib()
    return {"mode": mode, "visits": visits, "live": live, "before": before, "after": after,
            "bytes_per_visit": (after["VmRSS"] - before["VmRSS"]) * 1024 / visits}  # fmt: skip


def run_child(mode: str, visits: int, cap: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", mode, "--visits", str(visits), "--cap", str(cap)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=200_000)
    parser.add_argument("--cap", type=int, default=50_000)
    parser.add_argument("--child", choices=["bare", "engine", "capped"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.visits, args.cap)))
        return 0
    bare = run_child("bare", args.visits, args.cap)
    engine = run_child("engine", args.visits, args.cap)
    capped = run_child("capped", args.visits, args.cap)
    per_visit = engine["bytes_per_visit"]
    print(f"{args.visits:,} visits, 2 events each (VisitStarted + PageEntered), in-process")
    for r in (bare, engine, capped):
        print(
            f"  {r['mode']:7} live {r['live']:>8,}  RSS {r['before']['VmRSS'] / 1024:6.1f} -> "
            f"{r['after']['VmRSS'] / 1024:6.1f} MiB (peak {r['after']['VmHWM'] / 1024:6.1f})  "
            f"{r['bytes_per_visit']:7.0f} B/visit"
        )
    ratio = per_visit / bare["bytes_per_visit"]
    print(f"engine per visit: {per_visit:.0f} B (goal < {GOAL_BYTES}); {ratio:.1f} x bare dict")
    # At the cap, the peak must stay that of `cap` visits (plus what the batches in flight and
    # the interpreter take), far below that of all the visits sent.
    cap_bound_kib = capped["before"]["VmRSS"] + args.cap * per_visit * 1.25 / 1024
    peak = capped["after"]["VmHWM"]
    print(
        f"capped at {args.cap:,}: live {capped['live']:,}, peak RSS {peak / 1024:.1f} MiB "
        f"(bound for the cap {cap_bound_kib / 1024:.1f} MiB; uncapped "
        f"{engine['after']['VmHWM'] / 1024:.1f} MiB)"
    )
    ok = per_visit < GOAL_BYTES and capped["live"] <= args.cap and peak <= cap_bound_kib
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

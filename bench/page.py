"""The tracker's cost to the page it runs on, in Chromium, against a bare page that sends the
same events with ``navigator.sendBeacon`` (issue 16, item 5).

A small site server serves two pages with the same content: the *tracked* page loads the
engine's tracker (``/tracker.js`` of the engine, its app run in this process, strategies
none) with the two-line snippet and pushes one business event; the *bare* page sends a
landing and the same business event with ``navigator.sendBeacon`` to the site server, and a
last one when the page goes away, as the tracker does. Each page view is a fresh browser context
(a new visitor): load, wait ``--dwell-s``, one click that raises AddToCart, leave (the page is
replaced by about:blank, so exit beacons go).

Measured per page view, in Debian's Chromium through Playwright (flags as tests/e2e):
- script time: CDP ``Performance.getMetrics`` ``ScriptDuration`` (main thread JavaScript,
  the page's own inline code included in both), and ``TaskDuration``;
- long tasks: a ``PerformanceObserver`` of ``longtask`` entries (any main-thread task over
  50 ms), the longest and how many;
- bytes: request bodies the page sent (events, beacons; counted where they arrive, since the
  browser's request log misses beacons sent on pagehide) and the bytes it downloaded beyond the
  HTML (the tracker script, compressed as served, from the browser's request log).

    .venv/bin/python bench/page.py [--views 10] [--dwell-s 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import BrowserContext, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HOST, BenchError, free_port

from engagement.app import create_app
from engagement.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # tests/e2e/conftest.py
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LONG_TASK_MS = 50
# Request bodies received (by the site server for the bare page, by the engine for the tracked
# one), counted where they arrive: Chromium's own request log misses the beacons of pagehide.
RECEIVED: list[int] = []

CONTENT = """<h1>Laptop FB13</h1><p>Specifications, reviews and delivery options.</p>
<button type="button" id="add">Add to cart</button>"""

OBSERVER = """<script>
  window.__long = [];
  new PerformanceObserver(function (l) { l.getEntries().forEach(function (e) {
    window.__long.push(e.duration); }); }).observe({type: 'longtask', buffered: true});
</script>"""

TRACKED = """<!doctype html><html><head><meta charset="utf-8"><title>Laptop FB13</title>
{observer}
<script>
  window._gt = window._gt || [];
  (function (d) {{ var s = d.createElement('script'); s.async = true;
    s.src = '{engine}/tracker.js'; d.head.appendChild(s); }})(document);
</script></head><body>{content}
<script>
  document.getElementById("add").addEventListener("click", function () {{
    _gt.push(["event", "AddToCart", {{data: {{sku: "FB13", price: 649, currency: "EUR"}}}}]);
  }});
</script></body></html>"""

# The same events as the tracker's (a landing: VisitStarted + PageEntered; AddToCart; the page's
# exit), in the same envelope, each sent with sendBeacon as it happens.
BARE = """<!doctype html><html><head><meta charset="utf-8"><title>Laptop FB13</title>
{observer}</head><body>{content}
<script>
  (function () {
    function id() { var a = new Uint8Array(16); crypto.getRandomValues(a);
      return Array.from(a, function (b) { return (b < 16 ? '0' : '') + b.toString(16); })
        .join('').toUpperCase(); }
    var visit = id(), page = id();
    function ev(type, name, data) { return {eventType: type, eventName: name, eventID: id(),
      pageID: page, visitID: visit, globalVisitID: visit, timestamp: Date.now(),
      url: location.href, category: '', languageCode: navigator.language, data: data || {}}; }
    function send(events) { navigator.sendBeacon('/collect', JSON.stringify({events: events})); }
    send([ev('SYSTEM', 'VisitStarted', {userAgent: navigator.userAgent, returning: false,
            timezoneOffset: new Date().getTimezoneOffset()}),
          ev('SYSTEM', 'PageEntered', {title: document.title, referrer: document.referrer,
            utm: {}, focused: document.hasFocus()})]);
    document.getElementById('add').addEventListener('click', function () {
      send([ev('BUSINESS', 'AddToCart', {sku: 'FB13', price: 649, currency: 'EUR'})]); });
    addEventListener('pagehide', function () { send([ev('SYSTEM', 'PageExited', {})]); });
  })();
</script></body></html>"""


def site_app(engine_url: str) -> web.Application:
    async def tracked(request: web.Request) -> web.Response:
        html = TRACKED.format(observer=OBSERVER, engine=engine_url, content=CONTENT)
        return web.Response(text=html, content_type="text/html")

    async def bare(request: web.Request) -> web.Response:
        html = BARE.replace("{observer}", OBSERVER).replace("{content}", CONTENT)
        return web.Response(text=html, content_type="text/html")

    async def collect(request: web.Request) -> web.Response:
        RECEIVED.append(len(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/tracked.html", tracked)
    app.router.add_get("/bare.html", bare)
    app.router.add_post("/collect", collect)
    return app


async def one_view(context: BrowserContext, url: str, dwell_s: float) -> dict[str, Any]:
    RECEIVED.clear()
    downloaded: list[int] = []
    page = await context.new_page()

    async def on_finished(request: Any) -> None:
        if request.resource_type != "document" and request.method == "GET":
            sizes = await request.sizes()
            downloaded.append(sizes["responseBodySize"] + sizes["responseHeadersSize"])

    context.on("requestfinished", on_finished)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")
    await page.goto(url, wait_until="load")
    await asyncio.sleep(dwell_s)
    await page.click("#add")
    await asyncio.sleep(0.5)
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    long_tasks = await page.evaluate("window.__long")
    await page.goto("about:blank")  # pagehide: exit beacons
    await asyncio.sleep(1.0)
    sent = list(RECEIVED)
    await page.close()
    return {
        "script_ms": metrics["ScriptDuration"] * 1e3,
        "task_ms": metrics["TaskDuration"] * 1e3,
        "long_tasks": len(long_tasks),
        "longest_task_ms": max(long_tasks, default=0.0),
        "bytes_sent": sum(sent),
        "requests_sent": len(sent),
        "bytes_downloaded": sum(downloaded),
    }


async def run(tmp: Path, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    engine_app = create_app(
        Settings(data_dir=tmp / "data", api_keys=["bench"], demo=False, log_level="WARNING")
    )

    async def count_body(request: web.Request, response: web.StreamResponse) -> None:
        if request.method == "POST" and request.path == "/monitoring/events":
            RECEIVED.append(request.content_length or 0)

    engine_app.on_response_prepare.append(count_body)
    engine_port, site_port = free_port(), free_port()
    runners = [
        web.AppRunner(engine_app),
        web.AppRunner(site_app(f"http://127.0.0.1:{engine_port}")),
    ]
    for runner, port in zip(runners, (engine_port, site_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
    site = f"http://localhost:{site_port}"
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "tracked": []}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for i in range(args.views + 1):  # the first pair warms up (not counted)
                    for name in ("bare", "tracked"):
                        context = await browser.new_context()
                        try:
                            view = await one_view(context, f"{site}/{name}.html", args.dwell_s)
                        finally:
                            await context.close()
                        if i:
                            results[name].append(view)
            finally:
                await browser.close()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--views", type=int, default=10, help="page views of each page (10)")
    p.add_argument("--dwell-s", type=float, default=2.0, help="time on the page before the click")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing (Debian package chromium)")
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        results = asyncio.run(run(tmp, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.views} page views of each page (after one warm-up), {args.dwell_s:g} s each:")
    print(
        f"{'page':<8} {'script ms':>10} {'tasks ms':>9} {'long tasks':>11} {'longest ms':>11} "
        f"{'bytes sent':>11} {'requests':>9} {'downloaded':>11}"
    )
    med = {}
    for name, views in results.items():
        m = {k: statistics.median(v[k] for v in views) for k in views[0]}
        med[name] = m
        worst = max(v["longest_task_ms"] for v in views)
        print(
            f"{name:<8} {m['script_ms']:>10.1f} {m['task_ms']:>9.1f} "
            f"{sum(v['long_tasks'] for v in views):>11} {worst:>11.1f} "
            f"{m['bytes_sent']:>11,.0f} {m['requests_sent']:>9.0f} {m['bytes_downloaded']:>11,.0f}"
        )
    print("(medians per page view; long tasks: all views together, longest of any view)")
    t, b = med["tracked"], med["bare"]
    print(
        f"tracker / bare: script time {t['script_ms'] / b['script_ms']:.2f} x "
        f"(+{t['script_ms'] - b['script_ms']:.1f} ms), bytes sent "
        f"{t['bytes_sent'] / b['bytes_sent']:.2f} x, plus {t['bytes_downloaded']:,.0f} bytes of "
        f"script downloaded"
    )
    longest = max(v["longest_task_ms"] for v in results["tracked"])
    ok = longest <= LONG_TASK_MS
    print(
        f"main-thread tasks over {LONG_TASK_MS} ms on the tracked page: {'none' if ok else longest}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

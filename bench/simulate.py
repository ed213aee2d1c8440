"""The dry run's speed: a week of history, 10,000 visits, replayed through the shipped
strategies (with an experiment added), against a bare baseline measured in the same run.

Goal (issue 13): under a minute on this machine. The baseline reads the same history and folds
the same events into visit state, with no strategy engine: the ratio is what deciding costs.
Run: .venv/bin/python bench/simulate.py [--visits 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from engagement.experiments.simulate import dry_run
from engagement.strategy.loader import check_folder
from engagement.visits.model import Event, EventType
from engagement.visits.registry import VisitRegistry
from engagement.visits.store import SQLiteHistory

ROOT = Path(__file__).resolve().parent.parent
WEEK_MS = 7 * 86_400_000
SITE = "https://shop.example"
PAGES = [("/", "Home"), ("/products", "Products"), ("/product/WH15", "Workhorse 15 laptop"),
         ("/product/PK11", "Pocket 11"), ("/pricing", "Pricing"), ("/cart", "Cart"),
         ("/help", "Help")]  # fmt: skip
EXPERIMENT = """
strategies:
  - name: cart-experiment
    priority: 90
    when: {event: {name: AddToCart, where: {price: {gt: 900}}}}
    offer: {invite: chat.html, media: chat}
    holdout: 10%
    goal: {event: OrderPlaced, within_h: 24, value: total}
    variants:
      - {invite: chat.html, weight: 1}
      - {invite: callback.html, media: callback, weight: 1}
"""


def hex_id() -> str:
    return uuid.uuid4().hex.upper()


class _Sink:
    def record(self, visit: object, events: list[Event]) -> None:
        return None

    def record_closed(self, visit: object) -> None:
        return None


def visit_events(rng: random.Random, start_ms: int, gvid: str) -> list[Event]:
    """One visit: 2 to 10 pages, dwell 5 to 90 s each, sometimes a cart and an order."""
    visit_id, t = hex_id(), start_ms
    events: list[Event] = []

    def add(name: str, page: str, url: str, data: dict[str, object], system: bool) -> None:
        kind = EventType.SYSTEM if system else EventType.BUSINESS
        events.append(Event(hex_id(), kind, name, visit_id, page, gvid, t, t, url, "", "en",
                            data))  # fmt: skip

    page = hex_id()
    add("VisitStarted", page, SITE + "/", {"returning": rng.random() < 0.3, "userAgent": "x"},
        True)  # fmt: skip
    for _ in range(rng.randint(2, 10)):
        path, title = rng.choice(PAGES)
        page = hex_id()
        add("PageEntered", page, SITE + path, {"title": title, "referrer": "", "utm": {}}, True)
        t += rng.randint(5_000, 90_000)
        if path == "/cart" and rng.random() < 0.5:
            add("AddToCart", page, SITE + path, {"price": rng.choice([49, 329, 1199])}, False)
        if path == "/cart" and rng.random() < 0.2:
            add("OrderPlaced", page, SITE + path, {"total": rng.randint(50, 2000)}, False)
        add("PageExited", page, SITE + path, {}, True)
        t += 500
    return events


async def seed(history: SQLiteHistory, visits: int, since_ms: int) -> int:
    rng = random.Random(13)
    registry = VisitRegistry(history, 1800)
    everything = []
    for _ in range(visits):
        gvid = hex_id()
        everything.extend(visit_events(rng, since_ms + rng.randrange(WEEK_MS - 3_600_000), gvid))
    everything.sort(key=lambda e: e.server_time)
    for i in range(0, len(everything), 5_000):
        registry.ingest(everything[i : i + 5_000])
        await history.flush()
    for visit in list(registry):
        visit.close(visit.last_seen_at)
        history.record_closed(visit)
    await history.flush(final=True)
    return len(everything)


async def main(visits: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    try:
        folder = tmp / "draft"
        shutil.copytree(ROOT / "strategies", folder)
        (folder / "experiment.yaml").write_text(EXPERIMENT)
        draft, errors = check_folder(folder)
        assert not errors, errors
        history = SQLiteHistory(tmp / "history.sqlite3")
        await history.open()
        since = int(time.time() * 1000) - WEEK_MS - 86_400_000
        started = time.perf_counter()
        n_events = await seed(history, visits, since)
        print(f"seeded {visits:,} visits, {n_events:,} events over 7 days "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

        started = time.perf_counter()
        events, _ = await history.replay_source(since, since + WEEK_MS)
        registry = VisitRegistry(_Sink(), 1800)
        for e in events:
            registry.ingest([e])
        bare_s = time.perf_counter() - started

        started = time.perf_counter()
        run = await dry_run(history, draft, since, since + WEEK_MS, 1800)
        total_s = time.perf_counter() - started
        await history.close()
        decided = len(run.decisions)
        print(f"bare (read + visit state): {bare_s:.2f} s, {len(events) / bare_s:,.0f} events/s")
        print(f"dry run ({len(draft)} strategies): {total_s:.2f} s for {run.visits:,} visits, "
              f"{run.events:,} events, {decided:,} decisions: {run.visits / total_s:,.0f} "
              f"visits/s, {run.events / total_s:,.0f} events/s")  # fmt: skip
        print(f"ratio dry run / bare: {total_s / bare_s:.2f}; goal: a week of {visits:,} visits "
              f"under 60 s: {'met' if total_s < 60 else 'NOT met'} ({total_s:.1f} s)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visits", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().visits))

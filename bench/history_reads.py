"""GWE History REST reads: the cost of one page of events as a visit's history grows.

The History API reads `page_size` rows at a time with a keyset cursor; a page should cost about
the same whether the visit holds 200 events or 20,000, and not far above a bare SQLite
`SELECT ... LIMIT` of the same rows (no cursor, no ordering, no JSON). Prints both ratios.
Run: .venv/bin/python bench/history_reads.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from engagement.visits.gwe_reads import EventFilters, GweHistory
from engagement.visits.identity import IdentityBook
from engagement.visits.store import SQLiteHistory

PAGE_SIZE = 100
SIZES = (200, 20_000)  # events in the visit read
RUNS = 300


def new_id() -> str:
    return uuid.uuid4().hex.upper()


async def fill(history: SQLiteHistory, visit_id: str, events: int, seq0: int) -> None:
    gvid = new_id()
    await history.db.execute(
        "INSERT INTO visits VALUES (?, ?, 0, 0, NULL, 'anonymous', '{}', 0, 'bench', 'en', 0)",
        (visit_id, gvid),
    )
    page = new_id()
    rows = [
        (visit_id, new_id(), page, gvid, "BUSINESS", f"E{i % 7}", i, i, "https://shop.example/",
         "", "en", json.dumps({"i": i}), seq0 + i)
        for i in range(events)
    ]  # fmt: skip
    await history.db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )


async def timed(call: object, runs: int = RUNS) -> float:
    """Median seconds per call of an awaitable factory."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        history = SQLiteHistory(Path(tmp) / "h.sqlite3")
        history.sources.append(IdentityBook({}))
        await history.open()
        try:
            reads = GweHistory(history)
            visits = {size: new_id() for size in SIZES}
            for n, (size, visit_id) in enumerate(visits.items()):
                await fill(history, visit_id, size, n * 1_000_000)
            results = {}
            for size, visit_id in visits.items():
                middle = (SIZES.index(size) * 1_000_000) + size // 2

                async def engine_page(v: str = visit_id, after: int = middle) -> None:
                    await reads.events("visit", v, EventFilters(), after, PAGE_SIZE)

                async def bare_page(v: str = visit_id) -> None:
                    sql = "SELECT * FROM events WHERE visit_id = ? LIMIT ?"
                    await history.db.fetchall(sql, (v, PAGE_SIZE))

                results[size] = (await timed(engine_page), await timed(bare_page))
            small, large = SIZES
            for size, (engine, bare) in results.items():
                print(
                    f"visit of {size:>6} events: a page of {PAGE_SIZE} mid-history "
                    f"{engine * 1e3:.2f} ms, bare SELECT LIMIT {bare * 1e3:.2f} ms, "
                    f"ratio {engine / bare:.2f}"
                )
            growth = results[large][0] / results[small][0]
            print(f"page cost, {large} / {small} events: {growth:.2f}")
        finally:
            await history.close()


if __name__ == "__main__":
    asyncio.run(main())

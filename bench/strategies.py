"""Strategy evaluation cost per event with 10, 100 and 1,000 strategies loaded.

Budget (DESIGN.md): the cost with 1,000 strategies is at most 2 x the cost with 10. The event
stream is the same for every size; the strategies added beyond the first ten listen for
events and categories that this stream never raises: with the index they cost nothing, with a
loop over all strategies they would cost 100 x. Run: .venv/bin/python bench/strategies.py

`--write-folder DIR --count N` writes N such strategies as YAML files instead (the ingest
benchmark loads 100 of them into the real engine).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path

from engagement.availability import AvailabilityBoard
from engagement.strategy.engine import Engine
from engagement.strategy.loader import check_folder
from engagement.visits.model import Event, EventType, Visit

LIVE_EVENTS = ["AddToCart", "Search", "Compare", "Wishlist", "Coupon"]
LIVE_CATEGORIES = ["products", "pricing", "cart", "support", "blog"]
EVENTS_PER_RUN = 20_000
VISITS = 500
RUNS = 7


def strategy_yaml(i: int, live: bool) -> str:
    """One strategy; `live` ones can match the benchmark's stream, the others never can."""
    if live:
        kind = i % 3
        if kind == 0:
            when = (
                f"event: {{name: {LIVE_EVENTS[i % 5]}, where: {{price: {{gt: {100 * i}}}}},"
                f" count: {2 + i % 3}}}"
            )
        elif kind == 1:
            when = f"category: {{name: {LIVE_CATEGORIES[i % 5]}, count: {3 + i}}}"
        else:
            when = (
                f"categories_in_sequence: [{LIVE_CATEGORIES[i % 5]}, "
                f"{LIVE_CATEGORIES[(i + 2) % 5]}, {LIVE_CATEGORIES[(i + 4) % 5]}]"
            )
    elif i % 2:
        when = f"event: {{name: Campaign{i}, where: {{value: {{ge: 10}}}}}}"
    else:
        when = f"category: {{name: section{i}, count: 2}}"
    return (
        f"  - name: s{i}\n    priority: {i % 17}\n    when:\n      {when}\n"
        f"    offer: {{invite: chat.html, media: chat}}\n"
    )


def write_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cats = "".join(f"  {c}: [/{c}]\n" for c in LIVE_CATEGORIES)
    cats += "".join(f"  section{i}: [/section{i}/]\n" for i in range(0, count, 2))
    (folder / "categories.yaml").write_text("categories:\n" + cats)
    body = "".join(strategy_yaml(i, live=i < 10) for i in range(count))
    (folder / "strategies.yaml").write_text("strategies:\n" + body)


def new_id() -> str:
    return uuid.uuid4().hex.upper()


def stream(rng: random.Random) -> list[tuple[int, Event]]:
    """(visit index, event): page views in the live categories and business events."""
    out = []
    pages = {v: new_id() for v in range(VISITS)}
    for n in range(EVENTS_PER_RUN):
        v = rng.randrange(VISITS)
        if rng.random() < 0.4:
            pages[v] = new_id()
            name, etype, cat = "PageEntered", EventType.SYSTEM, rng.choice(LIVE_CATEGORIES)
            data: dict[str, object] = {"title": cat}
        else:
            name, etype, cat = rng.choice(LIVE_EVENTS), EventType.BUSINESS, ""
            data = {"price": rng.randrange(2000)}
        out.append(
            (
                v,
                Event(
                    new_id(),
                    etype,
                    name,
                    f"V{v}",
                    pages[v],
                    "G",
                    n,
                    n,
                    f"https://shop.example/{cat}",
                    cat,
                    "en",
                    data,
                ),
            )
        )
    return out


def measure(count: int, tmp: Path) -> tuple[float, int]:
    folder = tmp / f"s{count}"
    write_folder(folder, count)
    strategies, errors = check_folder(folder)
    assert not errors, errors
    assert len(strategies) == count
    rng = random.Random(7)
    events = stream(rng)
    best = float("inf")
    evaluations = 0
    for _ in range(RUNS):
        # No attempt is created, so limits and strict mode never cut the evaluation short.
        engine = Engine(strategies, AvailabilityBoard(), strict=False)
        visits = [Visit(f"V{v}", "G", 0, 0) for v in range(VISITS)]
        for visit, (_, event) in zip(visits, events[:VISITS], strict=False):
            visit.apply(event)
        started = time.perf_counter()
        for v, event in events:
            visit = visits[v]
            visit.apply(event)
            engine.on_events(visit, (event,), event.server_time)
        elapsed = time.perf_counter() - started
        best = min(best, elapsed)
        evaluations = engine.evaluations
    return best / len(events) * 1e6, evaluations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-folder", type=Path)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    if args.write_folder:
        write_folder(args.write_folder, args.count)
        print(f"wrote {args.count} strategies to {args.write_folder}")
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, Path(tmp)) for n in (10, 100, 1000)}
    print(f"{'strategies':>10}  {'us/event':>9}  {'evaluations':>11}")
    for n, (us, evals) in results.items():
        print(f"{n:>10}  {us:>9.2f}  {evals:>11}")
    ratio = results[1000][0] / results[10][0]
    verdict = "PASS" if ratio <= 2 else "FAIL"
    print(f"ratio 1000/10 = {ratio:.2f} (budget <= 2): {verdict}")
    print(f"(visit state update + evaluation per event, best of {RUNS} runs)")


if __name__ == "__main__":
    main()

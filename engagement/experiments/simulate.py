"""``engagement simulate``: what a draft strategies folder would have done to past traffic,
against what the live strategies did (the console's dry run shows the same)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from ..attempts import Attempt, Origin, State
from ..strategy.engine import StrategySet
from ..visits.model import Event
from ..visits.store import History
from .replay import Decision, Replay, day_of

DAY_MS = 86_400_000
_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([dhm])$")
_UNIT_MS = {"d": DAY_MS, "h": 3_600_000, "m": 60_000}


class PeriodError(ValueError):
    """A --since / --until that is neither a duration (7d, 12h) nor a UTC day or time."""


def parse_moment(text: str, now_ms: int) -> int:
    """``7d``, ``12h``, ``30m`` ago, or an ISO day / time in UTC, as engine ms."""
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        return now_ms - int(float(ago.group(1)) * _UNIT_MS[ago.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise PeriodError(f"{text!r}: write a duration like 7d or 12h, or a day like "
                          "2024-05-01") from exc  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@dataclass(slots=True)
class StrategyResult:
    name: str
    priority: int | None  # None: not in the draft (only live)
    invitations: Counter[dt.date] = field(default_factory=Counter)
    live_invitations: Counter[dt.date] = field(default_factory=Counter)
    reached: set[str] = field(default_factory=set)  # visitors invited
    live_reached: set[str] = field(default_factory=set)
    held_out: set[str] = field(default_factory=set)
    took: Counter[str] = field(default_factory=Counter)  # visitors won over lower strategies
    lost: Counter[str] = field(default_factory=Counter)  # visitors lost to higher ones

    @property
    def total(self) -> int:
        return sum(self.invitations.values())

    @property
    def live_total(self) -> int:
        return sum(self.live_invitations.values())


@dataclass(slots=True)
class DryRun:
    since_ms: int
    until_ms: int
    visits: int
    events: int
    elapsed_s: float
    days: list[dt.date]
    strategies: list[StrategyResult]
    decisions: list[Decision]


def summarize(
    replay: Replay, live: list[Attempt], since_ms: int, until_ms: int, visits: int, elapsed_s: float
) -> DryRun:
    results: dict[str, StrategyResult] = {
        s.name: StrategyResult(s.name, s.priority) for s in replay.strategies.strategies
    }
    took: dict[tuple[str, str], set[str]] = {}
    for d in replay.decisions:
        r = results[d.strategy]
        if d.held_out:
            r.held_out.add(d.visitor)
        else:
            r.invitations[day_of(d.at)] += 1
            r.reached.add(d.visitor)
        for other in d.outranked:
            took.setdefault((d.strategy, other), set()).add(d.visitor)
    for (winner, loser), visitors in took.items():
        results[winner].took[loser] = len(visitors)
        results[loser].lost[winner] = len(visitors)
    for a in live:
        if a.origin is not Origin.STRATEGY or a.at(State.HELD_OUT) is not None:
            continue
        r = results.setdefault(a.strategy, StrategyResult(a.strategy, None))
        r.live_invitations[day_of(a.created_at)] += 1
        r.live_reached.add(a.global_visit_id)
    first, last = day_of(since_ms), day_of(max(since_ms, until_ms - 1))
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    ordered = sorted(results.values(), key=lambda r: (r.priority is None, -(r.priority or 0),
                                                      r.name))  # fmt: skip
    return DryRun(since_ms, until_ms, visits, replay.events_replayed, elapsed_s, days, ordered,
                  replay.decisions)  # fmt: skip


async def dry_run(
    history: History,
    draft: StrategySet,
    since_ms: int,
    until_ms: int,
    visit_timeout_s: float,
    strict: bool = True,
) -> DryRun:
    """Replay the visits that started in [since, until) through ``draft``."""
    events, attempts = await history.replay_source(since_ms, until_ms)
    # Minutes of CPU for a big history: in a thread, so a server keeps serving meanwhile
    # (the replay shares no state with the live engine).
    return await asyncio.to_thread(replay, draft, events, attempts, since_ms, until_ms,
                                   visit_timeout_s, strict)  # fmt: skip


def replay(
    draft: StrategySet,
    events: list[Event],
    attempts: list[Attempt],
    since_ms: int,
    until_ms: int,
    visit_timeout_s: float,
    strict: bool = True,
) -> DryRun:
    started = time.perf_counter()
    visit_ids = {e.visit_id for e in events}
    live = [a for a in attempts if a.created_at >= since_ms and a.visit_id in visit_ids]
    run = Replay(draft, live, visit_timeout_s, strict)
    run.seed_ledger(a for a in attempts if a.created_at < since_ms)
    run.run(events)
    run.finish(until_ms)
    elapsed_s = time.perf_counter() - started
    return summarize(run, live, since_ms, until_ms, len(visit_ids), elapsed_s)


def _pair(draft: int, live: int) -> str:
    return f"{draft} / {live}"


def render_text(run: DryRun) -> str:
    """What the command prints: per strategy, draft against live, per day, and who outranks."""
    since, until = day_of(run.since_ms), day_of(max(run.since_ms, run.until_ms - 1))
    lines = [
        f"Dry run {since} .. {until} (UTC): {run.visits} visits, {run.events} events replayed "
        f"in {run.elapsed_s:.1f} s ({run.events / max(run.elapsed_s, 1e-9):,.0f} events/s)",
        "",
        f"{'strategy':<24} {'priority':>8} {'invitations draft / live':>26} "
        f"{'visitors draft / live':>22} {'held out':>9}",
    ]
    for r in run.strategies:
        priority = "-" if r.priority is None else str(r.priority)
        lines.append(
            f"{r.name:<24} {priority:>8} {_pair(r.total, r.live_total):>26} "
            f"{_pair(len(r.reached), len(r.live_reached)):>22} {len(r.held_out):>9}"
        )
    lines += ["", "Invitations per day (draft / live):",
              f"{'day':<12}" + "".join(f"{r.name[:20]:>22}" for r in run.strategies)]  # fmt: skip
    for day in run.days:
        cells = "".join(
            f"{_pair(r.invitations[day], r.live_invitations[day]):>22}" for r in run.strategies
        )
        lines.append(f"{day.isoformat():<12}{cells}")
    overlaps = [(r.name, loser, n) for r in run.strategies for loser, n in sorted(r.took.items())]
    lines += ["", "Visitors won by priority (the other strategy matched too):"]
    if not overlaps:
        lines.append("  none: no two strategies matched the same visitor at once")
    for winner, loser, n in overlaps:
        lines.append(f"  {winner} took {n} visitor{'s' if n != 1 else ''} from {loser}")
    return "\n".join(lines) + "\n"

"""The strategy report: how far each strategy's engagement attempts went, per UTC day.

``funnel`` is pure (attempt records in, rows out); ``read_report`` feeds it from the history
store. An attempt counts in every state its recorded transitions reached, so a step of the
funnel never counts an attempt twice, and never counts one that skipped it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .visits.store import History

# The funnel's steps, in order; accepted / declined / timed_out are the visitor's answers.
# `paced`: held back because the strategy's agent group had no room (demand lost to capacity
# when it never went on to `offered`).
FUNNEL = (
    "detected",
    "paced",
    "offered",
    "shown",
    "accepted",
    "declined",
    "timed_out",
    "launched",
    "completed",
)
CSV_HEADER = ("strategy", "day", *FUNNEL, "acceptance_rate")
DAY_MS = 86_400_000
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What the report needs of one attempt."""

    strategy: str
    created_at: int  # engine ms
    states: frozenset[str]  # every state its transitions reached


@dataclass(slots=True)
class FunnelRow:
    """One strategy's attempts on one UTC day (``day`` None: the whole period)."""

    strategy: str
    day: dt.date | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL, 0))

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / shown, or None when nothing was shown."""
        shown = self.counts["shown"]
        return round(self.counts["accepted"] / shown, 4) if shown else None

    def add(self, states: Iterable[str]) -> None:
        for state in states:
            if state in self.counts:
                self.counts[state] += 1


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Inclusive UTC days (None: unbounded) and one strategy (None: all)."""

    since: dt.date | None = None
    until: dt.date | None = None
    strategy: str | None = None

    def bounds_ms(self) -> tuple[int | None, int | None]:
        """``created_at`` from (inclusive) and to (exclusive) in engine ms."""
        start = _day_ms(self.since) if self.since else None
        end = _day_ms(self.until) + DAY_MS if self.until else None
        return start, end


def utc_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


def record_of(
    strategy: str, created_at: int, transitions: Iterable[Sequence[object]]
) -> AttemptRecord:
    """An attempt record from stored transitions ``[[state, ms, reason], ...]``."""
    return AttemptRecord(strategy, created_at, frozenset(str(t[0]) for t in transitions))


def funnel(records: Iterable[AttemptRecord]) -> list[FunnelRow]:
    """One row per strategy and UTC day of ``created_at``, ordered by strategy then day."""
    rows: dict[tuple[str, dt.date], FunnelRow] = {}
    for record in records:
        day = utc_day(record.created_at)
        row = rows.get((record.strategy, day))
        if row is None:
            row = rows[(record.strategy, day)] = FunnelRow(record.strategy, day)
        row.add(record.states)
    return [rows[key] for key in sorted(rows)]


def totals(rows: Iterable[FunnelRow]) -> list[FunnelRow]:
    """The day rows summed per strategy, ordered by strategy."""
    by_strategy: dict[str, FunnelRow] = {}
    for row in rows:
        total = by_strategy.setdefault(row.strategy, FunnelRow(row.strategy, None))
        for state, n in row.counts.items():
            total.counts[state] += n
    return [by_strategy[name] for name in sorted(by_strategy)]


def to_csv(rows: Iterable[FunnelRow]) -> str:
    """A header row, then one row per strategy and day."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        rate = row.acceptance_rate
        day = row.day.isoformat() if row.day else ""
        counts = [row.counts[state] for state in FUNNEL]
        strategy = csv_cell(row.strategy)
        writer.writerow([strategy, day, *counts, "" if rate is None else f"{rate:.4f}"])
    return out.getvalue()


def csv_cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``, tab or CR
    would start a formula (``=HYPERLINK(...)``), so such a cell gets a leading ``'``
    (OWASP's advice on CSV injection)."""
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text


# -- reading the history store --


async def read_records(history: History, where: ReportFilter) -> list[AttemptRecord]:
    """The attempts recorded so far that the filter selects."""
    await history.catch_up()
    clauses: list[str] = []
    args: list[object] = []
    start, end = where.bounds_ms()
    if start is not None:
        clauses.append("created_at >= ?")
        args.append(start)
    if end is not None:
        clauses.append("created_at < ?")
        args.append(end)
    if where.strategy is not None:
        clauses.append("strategy = ?")
        args.append(where.strategy)
    sql = "SELECT strategy, created_at, transitions FROM attempts"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = await history.db.fetchall(sql + " ORDER BY created_at", args)
    return [record_of(r[0], r[1], json.loads(r[2])) for r in rows]


async def read_report(history: History, where: ReportFilter) -> list[FunnelRow]:
    """The funnel rows (strategy, day) for the filter."""
    return funnel(await read_records(history, where))


async def strategy_names(history: History) -> list[str]:
    """Every strategy with a recorded attempt (agents' ``agent:<name>`` included)."""
    await history.catch_up()
    rows = await history.db.fetchall("SELECT DISTINCT strategy FROM attempts ORDER BY 1")
    return [str(r[0]) for r in rows]

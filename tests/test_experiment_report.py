"""The experiment report's statistics and exports, on populations whose truth is known."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from engagement.db.migrations import HISTORY, MIGRATIONS, RECORDS
from engagement.experiments.report import ExperimentRecord, experiment_rows, to_csv
from engagement.experiments.stats import lift, wilson
from engagement.visits.store import SQLiteHistory


def test_wilson_matches_the_published_example():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 0) == (0.0, 1.0)


def test_newcombe_matches_the_published_examples():
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", method 10, examples (a) and (c).
    for k1, n1, k0, n0, expected in [(56, 70, 48, 80, (0.0524, 0.3339)),
                                     (9, 10, 3, 10, (0.1705, 0.8090))]:  # fmt: skip
        found = lift(k1, n1, k0, n0)
        assert found is not None
        assert (round(found.low, 4), round(found.high, 4)) == expected
    assert lift(3, 10, 0, 0) is None


def population(seed: int, n_holdout: int, p_holdout: float, n_invited: int, p_invited: float):
    rng = random.Random(seed)
    records = []
    for i in range(n_holdout + n_invited):
        held = i < n_holdout
        converted = rng.random() < (p_holdout if held else p_invited)
        states = frozenset({"detected", "held_out"} if held else {"detected", "offered", "shown"})
        goals = {f"E{i}": 50.0} if converted else {}
        records.append(ExperimentRecord("big-cart", "holdout" if held else "", f"V{i}", states,
                                        goals))  # fmt: skip
    return experiment_rows(records)


def test_a_known_effect_is_found_within_its_interval():
    holdout, invited = population(7, 2_000, 0.10, 18_000, 0.13)
    assert (holdout.arm, invited.arm) == ("holdout", "invited")
    assert (holdout.qualified, invited.qualified, invited.shown) == (2_000, 18_000, 18_000)
    assert invited.lift is not None
    assert invited.lift.low <= 0.03 <= invited.lift.high
    assert invited.lift.significant
    assert invited.lift.low > 0


def test_no_effect_claims_none():
    _holdout, invited = population(11, 2_000, 0.10, 18_000, 0.10)
    assert invited.lift is not None
    assert invited.lift.low <= 0 <= invited.lift.high
    assert not invited.lift.significant


def test_the_interval_covers_the_truth_95_times_in_100():
    rng = random.Random(3)
    covered, runs = 0, 400
    for _ in range(runs):  # small groups, a low rate: where a normal interval would fail
        k0 = sum(rng.random() < 0.05 for _ in range(60))
        k1 = sum(rng.random() < 0.12 for _ in range(240))
        found = lift(k1, 240, k0, 60)
        assert found is not None
        covered += found.low <= 0.07 <= found.high
    assert 0.92 <= covered / runs <= 0.99


def test_variants_are_compared_one_by_one_and_together():
    records = [ExperimentRecord("s", variant, f"{variant}{i}", frozenset({"detected"}),
                                {f"E{variant}{i}": 0.0} if i < converted else {})
               for variant, converted in (("holdout", 1), ("a", 3), ("b", 5))
               for i in range(10)]  # fmt: skip
    rows = experiment_rows(records)
    assert [(r.arm, r.qualified, r.converted) for r in rows] == [
        ("holdout", 10, 1), ("a", 10, 3), ("b", 10, 5), ("all invited", 20, 8),
    ]  # fmt: skip
    assert rows[0].lift is None
    assert [round(r.lift.difference, 2) for r in rows[1:] if r.lift] == [0.2, 0.4, 0.3]


def test_csv_neutralizes_formulas():
    records = [ExperimentRecord("=HYPERLINK(\"x\")", "holdout", "V1", frozenset(), {}),
               ExperimentRecord("=HYPERLINK(\"x\")", "-1+2", "V2", frozenset({"shown"}),
                                {"E1": 12.5})]  # fmt: skip
    # lift_low by hand: 1 - sqrt((1 - 0.2065)^2 + (0.7935 - 0)^2) = -0.1221
    assert to_csv(experiment_rows(records)).splitlines() == [
        "strategy,arm,qualified,shown,accepted,converted,conversion_rate,rate_low,rate_high,"
        "value,value_per_visitor,lift,lift_low,lift_high,relative_lift",
        '"\'=HYPERLINK(""x"")",holdout,1,0,0,0,0.0000,0.0000,0.7935,0.00,0.00,,,,',
        '"\'=HYPERLINK(""x"")",\'-1+2,1,1,0,1,1.0000,0.2065,1.0000,12.50,12.50,1.0000,-0.1221,'
        "1.0000,",
    ]


async def test_a_version_2_history_gains_the_experiment_columns(tmp_path: Path):
    path = tmp_path / "engagement.sqlite3"
    with sqlite3.connect(path) as db:  # a history written before migrations, at version 2
        db.executescript(HISTORY + RECORDS)
        db.execute("INSERT INTO attempts VALUES ('A', 'V', 'G', 'P', 's', 'strategy', 'chat.html',"
                   " 'chat', '{}', 30, 1000, 'offered', 1000, '[[\"offered\", 1000, \"\"]]',"
                   " '{}')")  # fmt: skip
        db.execute("PRAGMA user_version=2")
    history = SQLiteHistory(path)
    await history.open()
    try:
        (attempt,) = await history.attempts_since(0)
        assert (attempt.attempt_id, attempt.variant) == ("A", "")
    finally:
        await history.close()
    with sqlite3.connect(path) as db:
        applied = db.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        latest = db.execute("PRAGMA user_version").fetchone()
    assert [v for (v,) in applied] == [m.version for m in MIGRATIONS]
    assert latest == (MIGRATIONS[-1].version,)

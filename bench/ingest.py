"""Ingest benchmark: the engine's POST /monitoring/events against a bare aiohttp app.

Budget (docs: /work/shared/DESIGN.md, "Budgets"): engine events/s >= 0.6 x bare aiohttp's
requests/s, measured on the 2-core machine with the servers pinned to CPU 1 and the load
generator (wrk) to CPU 0. See bench/README.md for how to read the output.

    .venv/bin/python bench/ingest.py [--duration-s 10] [--strategies 100] [--config FILE]
                                     [--batches mixed|visit]

Exit status: 0 all ratios within budget, 1 a ratio is over budget, 2 no valid figure
(a server failed, a request was refused, events were not all recorded...).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    HOST,
    BenchError,
    LoadResult,
    Server,
    free_port,
    run_load,
    run_main,
    wrk_path,
)

PATH = "/monitoring/events"
# Issue 16: one event per request, engine events/s >= 0.75 x the bare app's requests/s; a
# batch, engine events/s >= 0.35 x the bare app's events/s (its requests/s x the batch).
BUDGET_ONE = 0.75
BUDGET_BATCH = 0.35
LUA = BENCH_DIR / "ingest.lua"


@dataclass(frozen=True)
class Scenario:
    name: str
    events_per_request: int


@dataclass
class ScenarioResult:
    scenario: Scenario
    baseline_runs: list[LoadResult]
    engine_runs: list[LoadResult]
    ceiling_runs: list[LoadResult]

    @property
    def baseline(self) -> LoadResult:
        return max(self.baseline_runs, key=lambda r: r.requests_per_s)

    @property
    def engine(self) -> LoadResult:
        return max(self.engine_runs, key=lambda r: r.events_per_s)

    @property
    def ceiling(self) -> LoadResult | None:
        return max(self.ceiling_runs, key=lambda r: r.requests_per_s, default=None)

    @property
    def ceiling_ratio(self) -> float | None:
        """The validation ceiling's events/s over the baseline's, for the judged ratio's unit:
        what an engine that validates with the same model reaches at best."""
        if self.ceiling is None:
            return None
        return self.ceiling.requests_per_s / self.baseline.requests_per_s

    @property
    def ratio(self) -> float:
        """Engine events/s over bare aiohttp's requests/s."""
        return self.engine.events_per_s / self.baseline.requests_per_s

    @property
    def budget(self) -> float:
        return BUDGET_ONE if self.scenario.events_per_request == 1 else BUDGET_BATCH

    @property
    def judged(self) -> float:
        """The ratio the budget is about: per request for one event, per event for a batch."""
        return self.ratio if self.scenario.events_per_request == 1 else self.per_event_ratio

    @property
    def passed(self) -> bool:
        return self.judged >= self.budget

    @property
    def per_event_ratio(self) -> float:
        """Stricter, for information: engine events/s over the baseline parsing the same events
        (its requests/s x events per request)."""
        return self.ratio / self.scenario.events_per_request


def add_load_options(p: argparse.ArgumentParser) -> None:
    """The load and the servers' set-up, shared with bench/ingest_stages.py."""
    p.add_argument("--connections", type=int, default=64, help="open connections (64)")
    p.add_argument("--visitors", type=int, default=1000, help="visitor pool size (1000)")
    p.add_argument(
        "--batches",
        choices=["mixed", "visit"],
        default="mixed",
        help="mixed: each event of a request from another visitor, the worst case (default); "
        "visit: one visitor's events per request, as the tracker sends one page's",
    )
    p.add_argument(
        "--strategies",
        type=int,
        default=100,
        help="strategies the engine loads, written by bench/strategies.py (100, the budget's)",
    )
    p.add_argument(
        "--stack",
        choices=["plain", "fast"],
        default="fast",
        help="the bare app's stack: fast (uvloop + orjson, as the engine ships; default) or "
        "plain (asyncio's loop, json), to see what the choices gain",
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=10.0, help="each measured run (10)")
    p.add_argument("--warmup-s", type=float, default=2.0, help="warm-up per server (2)")
    p.add_argument("--rounds", type=int, default=2, help="baseline/engine pairs, best kept (2)")
    p.add_argument("--batch", type=int, default=20, help="events per request, batch case (20)")
    add_load_options(p)
    p.add_argument("--config", type=Path, help="engine settings file, as ENGAGEMENT_CONFIG")
    p.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the validation ceiling (the bare app validating with the engine's model, "
        "doing nothing else: bare_ingest.py --validate engine)",
    )
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep-data", action="store_true", help="keep the engine's data dir")
    args = p.parse_args()
    if args.config is not None:
        args.config = args.config.resolve()
        if not args.config.is_file():
            p.error(f"--config {args.config} is not a file")
    if not 1 <= args.batch <= 100:
        p.error("--batch must be 1..100 (the engine's MAX_EVENTS_PER_BATCH)")
    return args


def engine_env(port: int, data_dir: Path, config: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    env.update(
        ENGAGEMENT_HOST=HOST,
        ENGAGEMENT_PORT=str(port),
        ENGAGEMENT_DATA_DIR=str(data_dir),
        ENGAGEMENT_API_KEYS='["bench"]',
        ENGAGEMENT_LOG_LEVEL="WARNING",
        ENGAGEMENT_DEMO="false",
    )
    if config is not None:
        env["ENGAGEMENT_CONFIG"] = str(config)
    return env


def check_run(server: Server, scenario: Scenario, r: LoadResult) -> None:
    """Every request must have been a valid, fresh batch the server accepted in full."""
    problems = []
    if r.requests == 0:
        problems.append("no request completed")
    if r.non2xx:
        problems.append(f"{r.non2xx} non-2xx responses")
    if r.socket_errors:
        problems.append(f"{r.socket_errors} socket errors/timeouts")
    if r.unparsed:
        problems.append(f"{r.unparsed} 2xx answers without an accepted count")
    if r.duplicates:
        problems.append(f"{r.duplicates} events answered as duplicates")
    if r.accepted != r.ok2xx * scenario.events_per_request:
        problems.append(
            f"accepted {r.accepted} events of {r.ok2xx * scenario.events_per_request} sent"
        )
    if problems:
        raise BenchError(f"{server.name}, {scenario.name}: " + "; ".join(problems))


def settle(engine: Server, timeout_s: float = 30.0) -> None:
    """Let the engine's history writer drain so it does not steal CPU from the next run."""
    deadline = time.monotonic() + timeout_s
    while engine.get_json("/health")["historyPending"] > 0:
        if time.monotonic() > deadline:
            raise BenchError(f"engine history still pending after {timeout_s:.0f} s")
        time.sleep(0.1)
    time.sleep(0.5)  # pending is 0 once a batch is taken; give its write time to finish


def one_run(
    server: Server,
    scenario: Scenario,
    duration_s: float,
    args: argparse.Namespace,
    session_nonce: str,
    label: str,
) -> LoadResult:
    run_nonce = secrets.token_hex(6).upper()  # fresh eventIDs for every run
    r = run_load(
        server,
        PATH,
        script=LUA,
        script_args=[
            str(scenario.events_per_request),
            run_nonce,
            session_nonce,
            str(args.visitors),
            args.batches,
        ],
        duration_s=duration_s,
        connections=args.connections,
    )
    check_run(server, scenario, r)
    print(
        f"  {label:<8} {server.name:<8} {r.requests_per_s:>9,.0f} req/s {r.events_per_s:>10,.0f} "
        f"events/s  server {r.server_cpu_pct:3.0f}% CPU "
        f"(CPU 1 busy {r.server_core_busy_pct:3.0f}%)  "
        f"loadgen {r.loadgen_cpu_pct:3.0f}% CPU  "
        f"p50 {r.lat_p50_ms:6.1f} ms  p99 {r.lat_p99_ms:6.1f} ms"
        + ("  <- noisy: other work on CPU 1" if noisy(r) else ""),
        flush=True,
    )
    return r


def noisy(r: LoadResult) -> bool:
    """CPU 1 was busy but not with the server: other processes ran there. Loopback softirq
    work (~5-15% of the core, charged to no process) explains a smaller gap."""
    return r.server_core_busy_pct > 95 and r.server_cpu_pct < 85


def count_events(db_path: Path) -> int:
    con = sqlite3.connect(db_path, timeout=10)
    try:
        return int(con.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        con.close()


def wait_recorded(engine: Server, db_path: Path, expected: int, timeout_s: float = 60.0) -> int:
    """Wait for historyPending to reach 0, then for the events table to hold them all.

    ``expected`` is a lower bound: requests still in flight when wrk stops at the end of a run
    are processed by the engine but not counted by wrk (at most connections x events/request
    per run)."""
    settle(engine, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        n = count_events(db_path)
        if n >= expected or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def bare_server(name: str, port: int, stack: str, tmp: Path, validate: str = "none") -> Server:
    """bench/bare_ingest.py on ``stack``: the baseline, or (``validate="engine"``) the ceiling."""
    argv = [sys.executable, str(BENCH_DIR / "bare_ingest.py"), "--host", HOST, "--port",
            str(port), "--stack", stack, "--validate", validate]  # fmt: skip
    return Server(name, argv, port, tmp / f"{name}.log", cwd=tmp)


def main() -> int:
    args = parse_args()
    scenarios = [
        Scenario("1 event/request", 1),
        Scenario(f"{args.batch} events/request", args.batch),
    ]
    if wrk_path() is None:
        print(
            "wrk not found (apt-get install -y wrk): using the slower bench/pyload.py; "
            "check its CPU column",
            file=sys.stderr,
        )
    venv_bin = Path(sys.executable).parent
    engagement = venv_bin / "engagement"
    if not engagement.exists():
        raise BenchError(f"{engagement} not found: pip install -e . in this venv first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    data_dir = tmp / "data"
    if args.strategies:
        # The engine runs in tmp: ./strategies is its default strategies_dir.
        from strategies import write_folder

        write_folder(tmp / "strategies", args.strategies)
    eport, bport, cport = free_port(), free_port(), free_port()
    engine = Server(
        "engine",
        [str(engagement), "serve"],
        eport,
        tmp / "engine.log",
        env=engine_env(eport, data_dir, args.config),
        cwd=tmp,
    )
    baseline = bare_server("baseline", bport, args.stack, tmp)
    ceiling = None if args.no_ceiling else bare_server("ceiling", cport, args.stack, tmp, "engine")
    results: list[ScenarioResult] = []
    try:
        engine.start()
        baseline.start()
        if ceiling is not None:
            ceiling.start()
            ceiling.wait_ready()
        engine.wait_ready()
        baseline.wait_ready()
        print(
            f"engine pid {engine.pid} on {engine.base_url} (CPU 1), baseline pid "
            f"{baseline.pid} on {baseline.base_url} (CPU 1), load generator on CPU 0: "
            f"{'wrk' if wrk_path() else 'pyload.py'} -c{args.connections}, "
            f"{args.duration_s:g} s runs, {args.visitors} visitors, batches {args.batches}"
            + (f", config {args.config}" if args.config else "")
            + f", {args.strategies} strategies loaded"
            + (f"; validation ceiling pid {ceiling.pid} (CPU 1)" if ceiling else ""),
            flush=True,
        )
        session_nonce = secrets.token_hex(6).upper()
        engine_accepted = 0
        in_flight_bound = 0  # events sent but not counted: wrk stops with requests in flight
        for scenario in scenarios:
            print(f"{scenario.name}:", flush=True)
            one_run(baseline, scenario, args.warmup_s, args, session_nonce, "warm-up")
            if ceiling is not None:
                one_run(ceiling, scenario, args.warmup_s, args, session_nonce, "warm-up")
            engine_accepted += one_run(
                engine, scenario, args.warmup_s, args, session_nonce, "warm-up"
            ).accepted
            in_flight_bound += args.connections * scenario.events_per_request
            settle(engine)
            result = ScenarioResult(scenario, [], [], [])
            for i in range(1, args.rounds + 1):
                result.baseline_runs.append(
                    one_run(baseline, scenario, args.duration_s, args, session_nonce, f"run {i}")
                )
                if ceiling is not None:
                    result.ceiling_runs.append(
                        one_run(ceiling, scenario, args.duration_s, args, session_nonce, f"run {i}")
                    )
                r = one_run(engine, scenario, args.duration_s, args, session_nonce, f"run {i}")
                result.engine_runs.append(r)
                engine_accepted += r.accepted
                in_flight_bound += args.connections * scenario.events_per_request
                settle(engine)
            results.append(result)

        recorded = wait_recorded(engine, data_dir / "engagement.sqlite3", engine_accepted)
        health = engine.get_json("/health")
        engine_mem, baseline_mem = engine.memory_kib(), baseline.memory_kib()
        report(results, args)
        print(
            f"\nengine RSS {engine_mem['VmRSS'] / 1024:,.0f} MiB (peak "
            f"{engine_mem['VmHWM'] / 1024:,.0f} MiB), baseline RSS "
            f"{baseline_mem['VmRSS'] / 1024:,.0f} MiB; live visits {health['liveVisits']:,}"
        )
        print(
            f"history: {recorded:,} rows in the events table for {engine_accepted:,} events "
            f"counted accepted by the load generator (warm-ups included; "
            f"+{recorded - engine_accepted:,} answered after it stopped counting, at most "
            f"{in_flight_bound:,}), historyPending {health['historyPending']}"
        )
        if not engine_accepted <= recorded <= engine_accepted + in_flight_bound:
            raise BenchError(
                f"history holds {recorded} events, expected {engine_accepted} "
                f"to {engine_accepted + in_flight_bound}"
            )
        ok = all(r.passed for r in results)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "budgets": {"one": BUDGET_ONE, "batch": BUDGET_BATCH},
                        "scenarios": [
                            {
                                "name": r.scenario.name,
                                "events_per_request": r.scenario.events_per_request,
                                "ratio": r.ratio,
                                "ceiling_ratio": r.ceiling_ratio,
                                "ceiling_runs": [asdict(x) for x in r.ceiling_runs],
                                "judged": r.judged,
                                "pass": r.passed,
                                "baseline_runs": [asdict(x) for x in r.baseline_runs],
                                "engine_runs": [asdict(x) for x in r.engine_runs],
                            }
                            for r in results
                        ],
                        "engine_memory_kib": engine_mem,
                        "baseline_memory_kib": baseline_mem,
                        "history_events": recorded,
                        "engine_accepted": engine_accepted,
                        "in_flight_bound": in_flight_bound,
                    },
                    indent=2,
                )
                + "\n"
            )
        return 0 if ok else 1
    finally:
        print(
            f"engine {engine.stop()}; baseline {baseline.stop()}"
            + (f"; ceiling {ceiling.stop()}" if ceiling is not None else "")
        )
        if args.keep_data:
            print(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(results: list[ScenarioResult], args: argparse.Namespace) -> None:
    print(f"\nbest of {args.rounds} runs of {args.duration_s:g} s each:")
    print(
        f"{'scenario':<20} {'server':<9} {'requests/s':>11} {'events/s':>11} "
        f"{'server CPU':>10} {'CPU 1 busy':>10} {'loadgen CPU':>11} {'p99 ms':>7}"
    )
    for res in results:
        rows = [("baseline", res.baseline), ("engine", res.engine)]
        if res.ceiling is not None:
            rows.insert(1, ("ceiling", res.ceiling))
        for name, r in rows:
            events = (
                r.events_per_s
                if name == "engine"
                else r.requests_per_s * res.scenario.events_per_request
            )
            print(
                f"{res.scenario.name:<20} {name:<9} {r.requests_per_s:>11,.0f} {events:>11,.0f} "
                f"{r.server_cpu_pct:>9.0f}% {r.server_core_busy_pct:>9.0f}% "
                f"{r.loadgen_cpu_pct:>10.0f}% "
                f"{r.lat_p99_ms:>7.1f}"
            )
    kept = [r for res in results for r in (res.baseline, res.engine, res.ceiling) if r]
    if any(noisy(r) for r in kept):
        print("warning: a kept run shared CPU 1 with other work; the ratios are less reliable")
    print()
    print(f"baseline stack: {args.stack}")
    for res in results:
        verdict = "PASS" if res.passed else "FAIL"
        if res.scenario.events_per_request == 1:
            what = "engine events/s / baseline requests/s"
        else:
            what = "engine events/s / baseline events/s"
            print(f"{res.scenario.name:<20} {'(info) per request':<40} = {res.ratio:5.2f}")
        print(
            f"{res.scenario.name:<20} {what:<40} = {res.judged:5.2f}  "
            f"(budget >= {res.budget})  {verdict}"
        )
        if res.ceiling_ratio is not None:
            print(
                f"{res.scenario.name:<20} {'(info) validation ceiling / baseline':<40} = "
                f"{res.ceiling_ratio:5.2f}  (the bare app validating with the engine's model, "
                "nothing else: the most a validating engine reaches)"
            )
    print("instructions per event, engine and bare (repeatable where times are not): "
          "bench/instructions.py")  # fmt: skip


if __name__ == "__main__":
    run_main(main)

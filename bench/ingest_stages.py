"""Where the ingest budget goes, in time: the bare app against the engine cut after each stage
of its ingest (bench/engine_stages.py: read, validate, build, registry, history, decide), under
ingest.py's load, in the same run.

Each server is a separate process pinned to CPU 1 (wrk on CPU 0); every round runs each one
for ``--duration-s``, in turn, and the best round of each is kept. For each cut it prints its
events/s, its ratio to the bare app (ingest.py's judged ratio: per request for one event per
request, per event for a batch) and what the stage took off that ratio. ``bench/instructions.py
--stages`` counts the same cuts in instructions.

    .venv/bin/python bench/ingest_stages.py [--duration-s 8] [--rounds 3] [--batch 1]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, LoadResult, Server, free_port, run_main
from engine_stages import STAGES
from ingest import Scenario, add_load_options, bare_server, engine_env, one_run, settle


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=8.0, help="each measured run (8)")
    p.add_argument("--warmup-s", type=float, default=3.0, help="warm-up per server (3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over all servers, best kept")
    p.add_argument("--batch", type=int, default=1, help="events per request (1)")
    add_load_options(p)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    if args.strategies:
        from strategies import write_folder

        write_folder(tmp / "strategies", args.strategies)  # each engine runs in tmp
    servers = [bare_server("bare", free_port(), args.stack, tmp)]
    for stage in STAGES:
        port = free_port()
        argv = [sys.executable, str(BENCH_DIR / "engine_stages.py"), stage]
        env = engine_env(port, tmp / f"data-{stage}", None)
        servers.append(Server(stage, argv, port, tmp / f"{stage}.log", env=env, cwd=tmp))
    scenario = Scenario(f"{args.batch} events/request", args.batch)
    session_nonce = secrets.token_hex(6).upper()
    best: dict[str, LoadResult] = {}
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        print(
            f"{scenario.name}, batches {args.batches}, {args.strategies} strategies, "
            f"{args.rounds} rounds of {args.duration_s:g} s; the bare app on {args.stack}",
            flush=True,
        )
        for server in servers:
            one_run(server, scenario, args.warmup_s, args, session_nonce, "warm-up")
            if server.name in ("history", "decide"):
                settle(server)
        for i in range(1, args.rounds + 1):
            for server in servers:
                r = one_run(server, scenario, args.duration_s, args, session_nonce, f"run {i}")
                if server.name in ("history", "decide"):
                    settle(server)  # its writer done before the next server's run
                if server.name not in best or r.requests_per_s > best[server.name].requests_per_s:
                    best[server.name] = r
        bare = best["bare"].requests_per_s * (1 if args.batch == 1 else args.batch)
        unit = "requests/s" if args.batch == 1 else "events/s"
        print(
            f"\nbest of {args.rounds}: the bare app {bare:,.0f} {unit}; "
            f"ratio = the cut's events/s / the bare app's {unit}"
        )
        before = 1.0
        for server in servers[1:]:
            events = best[server.name].requests_per_s * args.batch
            ratio = events / bare
            print(
                f"  the engine up to {server.name:<8} {events:>10,.0f} events/s  ratio "
                f"{ratio:5.2f}  ({server.name} takes {before - ratio:4.2f} off it)"
            )
            before = ratio
        return 0
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)

"""The `engagement` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import __version__, gcpolicy
from .app import create_app
from .db.connect import describe
from .experiments.simulate import PeriodError, dry_run, parse_moment, render_text
from .logs import setup_logging
from .process import arm_watchdog, fail_start, run_server, start_error
from .settings import CONFIG_ENV, Settings, describe_errors, load_settings, settings_file
from .strategy.loader import check_folder, strategy_files
from .visits.store import History


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return load_settings(args.config, **overrides)


def _where(args: argparse.Namespace) -> str:
    """Which settings file a command read, for messages that say where they looked."""
    path = settings_file(args.config).resolve()
    source = "--config" if args.config else CONFIG_ENV if os.environ.get(CONFIG_ENV) else "default"
    found = "read" if path.is_file() else "not there"
    return f"settings file {path} ({source}, {found})"


def _masked(key: str) -> str:
    return f"{key[:4]}…" if len(key) >= 16 else "…"


def banner(settings: Settings, generated: str | None) -> str:
    base = settings.public_url or f"http://localhost:{settings.port}"
    if generated:
        key = f"{generated}  (new, in {settings.api_key_file}: shown this once; "
        key += "`engagement api-key` prints it again)"
    elif settings.api_keys:
        key = f"{_masked(settings.configured_keys()[0].key)}  (from the settings)"
    else:
        key = f"{_masked(settings.resolved_api_keys()[0])}  (in {settings.api_key_file}; "
        key += "`engagement api-key` prints it)"
    demo = f"  demo site:   {base}/demo/\n" if settings.demo else ""
    return (
        f"engagement {__version__} on {base}\n"
        f"{demo}"
        f"  tracker:     {base}/tracker.js\n"
        f"  console:     {base}/console/  (log in with the API key)\n"
        f"  OpenAPI:     {base}/api/openapi.json\n"
        f"  API key:     {key}\n"
        f"  history:     {describe(settings.records_at)}"
    )


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    setup_logging(settings.log_format, settings.log_level)
    stop_s = settings.shutdown_timeout_s
    try:
        generated = settings.generate_api_key()
        app = create_app(settings)
    except Exception as exc:
        return fail_start(start_error(exc, settings), stop_s)
    gcpolicy.install(app)  # long-lived objects out of full GC passes
    arm_watchdog(app, stop_s)
    text = banner(settings, generated)
    try:
        # handler_cancellation: a page that goes away frees its push stream at once, not at
        # the next heartbeat; the handlers that must finish once started shield that part.
        # Requests get half the stop time; the stores the rest, before the watchdog fires.
        run_server(
            app,
            settings.host,
            settings.port,
            on_listening=lambda: print(text, flush=True),
            shutdown_timeout_s=stop_s / 2,
            handler_cancellation=True,
        )
    except Exception as exc:
        return fail_start(start_error(exc, settings), stop_s)
    return 0


def check(args: argparse.Namespace) -> int:
    """Validate a strategies folder the way the engine would load it."""
    settings = load_settings(args.config)
    folder = args.folder or settings.strategies_dir
    if not folder.is_dir():
        where = "" if args.folder else f" (strategies_dir; {_where(args)})"
        print(f"engagement: no strategies folder at {folder.resolve()}{where}", file=sys.stderr)
        return 2
    files = strategy_files(folder)
    strategies, errors = check_folder(folder, settings.invites_dir)
    for error in errors:
        print(error)
    summary = (
        f"{len(strategies)} strategies, {len(strategies.categories)} categories, "
        f"{len(strategies.declared_events)} tracker events in {len(files)} files"
    )
    if errors:
        plural = "s" if len(errors) > 1 else ""
        print(f"{len(errors)} error{plural}: fix them, the engine keeps the last good version "
              f"of those files; {summary} would run.")  # fmt: skip
        return 1
    print(f"OK: {summary}.")
    return 0


def simulate(args: argparse.Namespace) -> int:
    """Replay recorded visits through a draft strategies folder (a dry run)."""
    settings = _settings(args)
    if not args.folder.is_dir():
        print(f"{args.folder}: no such folder", file=sys.stderr)
        return 2
    draft, errors = check_folder(args.folder, settings.invites_dir)  # as `check` does
    for error in errors:
        print(error)
    if errors:
        print(f"{len(errors)} error(s) in {args.folder}: fix them before a dry run.")
        return 1
    if settings.database_url is None and not settings.db_path.exists():
        print(f"{settings.db_path}: no history to replay", file=sys.stderr)
        return 2
    now = int(time.time() * 1000)
    try:
        since, until = parse_moment(args.since, now), parse_moment(args.until, now)
    except PeriodError as exc:
        print(f"engagement simulate: {exc}", file=sys.stderr)
        return 2

    async def run() -> str:
        history = History(settings.records_at)
        await history.open()
        try:
            result = await dry_run(history, draft, since, until, settings.visit_timeout_s,
                                   settings.strict_mode)  # fmt: skip
        finally:
            await history.close()
        return render_text(result)

    print(asyncio.run(run()), end="")
    return 0


def api_key(args: argparse.Namespace) -> int:
    """Print the key `serve` uses; never make a new one (that is serve's first start)."""
    settings = _settings(args)
    if settings.api_keys:
        print(settings.configured_keys()[0].key)
        return 0
    if settings.api_key_file.is_file():
        print(settings.api_key_file.read_text().strip())
        return 0
    key_file = settings.api_key_file.resolve()
    print(
        f"engagement: no API key: no api_keys in the settings and no {key_file}"
        f" ({_where(args)}). `engagement serve` writes one on its first start: run this where "
        "serve runs, or with the same --config, ENGAGEMENT_CONFIG or --data-dir.",
        file=sys.stderr,
    )
    return 2


def copy_history(args: argparse.Namespace) -> int:
    """Copy a SQLite history into PostgreSQL; again later, it adds only what is new."""
    from .db.copy import copy_history as copy

    settings = _settings(args)
    source: Path = args.source or settings.db_path
    target: str | None = args.target or settings.database_url
    if target is None or not target.startswith(("postgresql://", "postgres://")):
        print("engagement copy-history: --to postgresql://... (or database_url) is needed",
              file=sys.stderr)  # fmt: skip
        return 2
    if not source.is_file():
        print(f"engagement copy-history: {source}: no such SQLite file", file=sys.stderr)
        return 2
    print(f"copying {source} into {describe(target)}")

    def show(c: Any) -> None:
        print(f"  {c.table:<16} {c.read:>9} rows read, {c.added:>9} added")

    done = asyncio.run(copy(source, target, show))
    print(f"done: {sum(c.read for c in done)} rows read, {sum(c.added for c in done)} added")
    return 0


def simulate_pacing(args: argparse.Namespace) -> int:
    """Discrete-event simulation of pacing (docs/pacing.md)."""
    from .pacing import simreport

    return simreport.main(args.duration_s, args.seed, args.plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engagement", description="Web engagement engine")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--config", type=Path, help="settings file (TOML); default ./engagement.toml"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the engine (and the demo site at /demo/)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=serve)
    p = sub.add_parser("check", help="check strategy files; non-zero exit on errors")
    p.add_argument("folder", nargs="?", type=Path, help="default: the strategies_dir setting")
    p.set_defaults(func=check)
    p = sub.add_parser("simulate", help="dry run: replay recorded visits through a draft folder")
    p.add_argument("folder", type=Path, help="the draft strategies folder")
    p.add_argument("--since", default="7d", help="7d, 12h, or a UTC day/time (default 7d)")
    p.add_argument("--until", default="0m", help="same forms; default now")
    p.add_argument("--data-dir", type=Path, help="where the history is (default: settings)")
    p.set_defaults(func=simulate, host=None, port=None)
    p = sub.add_parser("api-key", help="print the REST API key (generated on first use)")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=api_key, host=None, port=None)
    p = sub.add_parser("copy-history", help="copy a SQLite history into PostgreSQL")
    p.add_argument("--from", dest="source", type=Path, help="default: data_dir's SQLite file")
    p.add_argument("--to", dest="target", help="postgresql://...; default: database_url")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=copy_history, host=None, port=None)
    p = sub.add_parser("simulate-pacing", help="simulate pacing against the availability gate")
    p.add_argument("--duration-s", type=float, default=4 * 3600.0, help="virtual time per run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", type=Path, help="write the figures as a PNG here")
    p.set_defaults(func=simulate_pacing)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"engagement: invalid settings:\n{describe_errors(exc)}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"engagement: {exc}", file=sys.stderr)
        return 2
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        path = settings_file(args.config)
        print(f"engagement: cannot read the settings file {path}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

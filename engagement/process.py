"""Running ``engagement serve`` as a process a supervisor can trust: a failed start exits
non-zero with one line saying why; a stop (SIGTERM, SIGINT) ends within ``shutdown_timeout_s``
however stuck a store is, after writing what it can."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvloop
from aiohttp import web

from .api.errors import JSONErrorsHandler
from .settings import Settings

log = logging.getLogger(__name__)

EXIT_START_FAILED = 1
EXIT_STOP_TIMED_OUT = 3  # distinct: the supervisor's logs tell a forced stop from a crash
STOP_GRACE_S = 1.0  # the web server's own shutdown_timeout leaves this much for the stores
KEEPALIVE_TIMEOUT_S = 75.0  # web.run_app's default (a bare RequestHandler would keep 3630 s)


class StartError(Exception):
    """The engine could not start; the message is the one line the operator reads."""


def start_error(exc: BaseException, settings: Settings) -> StartError:
    """Turn what went wrong opening the port, the data folder or a store into one line."""
    if isinstance(exc, StartError):
        return exc
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
        where = f"{settings.host}:{settings.port}"
        return StartError(f"cannot listen on {where}: {exc.strerror or exc}")
    if isinstance(exc, OSError):
        return StartError(f"cannot use {exc.filename}: {exc.strerror or exc}")
    if isinstance(exc, sqlite3.Error):
        return StartError(f"cannot open the history store {settings.db_path}: {exc}")
    return StartError(f"{type(exc).__name__}: {exc}")


def arm_watchdog(app: web.Application, timeout_s: float) -> None:
    """Arm the stop timer as the app's first shutdown step."""

    async def arm(app: web.Application) -> None:
        log.info("stopping: at most %.0f s to write what is queued", timeout_s)
        _exit_after(timeout_s, EXIT_STOP_TIMED_OUT, "stop took longer than shutdown_timeout_s")

    app.on_shutdown.insert(0, arm)


def _exit_after(timeout_s: float, code: int, why: str) -> None:
    """A daemon timer: it cannot itself keep the process alive, and ends it if others do."""

    def give_up() -> None:
        log.error("%s (%.0f s): exiting now", why, timeout_s)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(timeout_s, give_up)
    timer.daemon = True
    timer.start()


def fail_start(error: StartError, timeout_s: float) -> int:
    """Say why in one line; the exit code to return. Should a thread opened before the failure
    keep the interpreter from exiting, the timer ends it."""
    print(f"engagement: cannot start: {error}", file=sys.stderr, flush=True)
    _exit_after(timeout_s, EXIT_START_FAILED, "a failed start did not exit")
    return EXIT_START_FAILED


class _JSONErrorsServer(web.Server):
    """aiohttp's server, with connections whose own errors are JSON (api.errors)."""

    def __call__(self) -> web.RequestHandler:
        return JSONErrorsHandler(self, loop=self._loop, **self._kwargs)


class _JSONErrorsRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app
        return _JSONErrorsServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **made._kwargs,
        )


def run_server(
    app: web.Application,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    shutdown_timeout_s: float,
    **handler_args: Any,
) -> None:
    """``web.run_app`` for one TCP address, whose connections answer even the requests aiohttp
    cannot parse in JSON (run_app cannot be handed a runner). Returns on SIGTERM or SIGINT,
    once the app is cleaned up; raises what a failed start raised."""

    async def serve() -> None:
        runner = _JSONErrorsRunner(
            app,
            handle_signals=True,
            shutdown_timeout=shutdown_timeout_s,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            **handler_args,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            on_listening()
            await asyncio.Event().wait()  # until a signal (GracefulExit) cancels this
        finally:
            await runner.cleanup()

    # uvloop: the same asyncio interface, its loop and transports in C (bench/instructions.py).
    with (
        contextlib.suppress(web.GracefulExit, KeyboardInterrupt),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(serve())

"""Running ``engagement serve`` as a process a supervisor can trust: a failed start exits
non-zero with one line saying why; a stop (SIGTERM, SIGINT) ends within ``shutdown_timeout_s``
however stuck a store is, after writing what it can."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading

from aiohttp import web

from .settings import Settings

log = logging.getLogger(__name__)

EXIT_START_FAILED = 1
EXIT_STOP_TIMED_OUT = 3  # distinct: the supervisor's logs tell a forced stop from a crash
STOP_GRACE_S = 1.0  # the web server's own shutdown_timeout leaves this much for the stores


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

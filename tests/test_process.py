"""The real `engagement serve` process: a failed start exits non-zero with one line saying why;
SIGTERM ends it, writing what is queued, even with a stuck store; /ready tells when history
writes fail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from .conftest import Factory

DEADLINE_S = 30  # generous: a deadline for a state, not a timing assertion
KEY = "process-test-key"


@dataclass
class Engine:
    proc: asyncio.subprocess.Process
    port: int
    folder: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}


async def run(folder: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engagement", *args, cwd=folder, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_settings(folder: Path, port: int, **extra: Any) -> None:
    lines = [f"port = {port}", 'host = "127.0.0.1"', f'api_keys = ["{KEY}"]']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    (folder / "engagement.toml").write_text("\n".join(lines) + "\n")


async def wait_until_up(engine: Engine) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert engine.proc.returncode is None, "the engine exited"
            try:
                async with session.get(engine.url("/health")) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("the engine did not answer")


@contextlib.asynccontextmanager
async def serving(
    folder: Path, stderr: int = asyncio.subprocess.DEVNULL, **settings: Any
) -> AsyncIterator[Engine]:
    """`engagement serve` run in ``folder`` with these settings, answering; killed after."""
    port = unused_port()
    write_settings(folder, port, **settings)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engagement", "serve", cwd=folder, env=clean_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    engine = Engine(proc, port, folder)
    try:
        await wait_until_up(engine)
        yield engine
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with serving(
        tmp_path, stderr=asyncio.subprocess.PIPE, shutdown_timeout_s=2,
        history_flush_interval_s=0.05,
    ) as engine:  # fmt: skip
        yield engine


async def stopped(engine: Engine) -> tuple[int, str]:
    engine.proc.send_signal(signal.SIGTERM)
    assert engine.proc.stderr is not None
    err = await asyncio.wait_for(engine.proc.stderr.read(), DEADLINE_S)
    code = await asyncio.wait_for(engine.proc.wait(), DEADLINE_S)
    return code, err.decode()


# -- failed starts --


async def test_a_data_folder_that_cannot_be_made_is_one_line_and_exit_1(tmp_path: Path):
    (tmp_path / "data").write_text("a file where the folder should be")

    code, out, err = await run(tmp_path, "serve", "--port", str(unused_port()))

    assert (code, out) == (1, "")
    assert err == "engagement: cannot start: cannot use data: File exists\n"


async def test_a_store_that_cannot_open_is_one_line_and_exit_1(tmp_path: Path):
    (tmp_path / "data" / "engagement.sqlite3").mkdir(parents=True)  # a folder, not a database

    code, out, err = await run(tmp_path, "serve", "--port", str(unused_port()))

    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == (
        "engagement: cannot start: cannot open the history store data/engagement.sqlite3: "
        "unable to open database file"
    )
    assert "Traceback" not in err


async def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_settings(tmp_path, port)

        code, out, err = await run(tmp_path, "serve")

    assert (code, out) == (1, "")
    last = err.splitlines()[-1]
    assert last.startswith(f"engagement: cannot start: cannot listen on 127.0.0.1:{port}: "), err
    assert "address already in use" in last
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "why"),
    [("port = [\n", "cannot read the settings file engagement.toml: "), (None, "")],
    ids=["bad-toml", "a-folder"],
)
async def test_unreadable_settings_are_one_line_and_exit_2(
    tmp_path: Path, content: str | None, why: str
):
    if content is None:
        (tmp_path / "engagement.toml").mkdir()
        why = "settings file engagement.toml is not a file"
    else:
        (tmp_path / "engagement.toml").write_text(content)

    code, out, err = await run(tmp_path, "--config", "engagement.toml", "serve")

    assert (code, out) == (2, "")
    assert err.startswith(f"engagement: {why}"), err
    assert len(err.splitlines()) == 1, err


# -- stopping --


async def test_sigterm_ends_the_process_with_the_history_written(engine: Engine):
    factory = Factory()
    factory.url = "http://localhost:1/"
    async with aiohttp.ClientSession() as session:
        body = {"events": factory.start("http://localhost:1/", "Home")}
        headers = {"Origin": "http://localhost:1"}
        async with session.post(engine.url("/monitoring/events"), json=body, headers=headers) as r:
            assert r.status == 200, await r.text()

    code, _ = await stopped(engine)

    assert code == 0
    with sqlite3.connect(engine.folder / "data" / "engagement.sqlite3") as db:
        rows = db.execute("SELECT visit_id FROM visits").fetchall()
    assert rows == [(factory.visit_id,)]


async def test_a_stuck_store_turns_ready_503_and_sigterm_still_ends_it(engine: Engine):
    factory = Factory()
    db = sqlite3.connect(engine.folder / "data" / "engagement.sqlite3", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")  # another process holds the database: every write waits
    try:
        async with aiohttp.ClientSession() as session:
            body = {"events": factory.start("http://localhost:1/", "Home")}
            headers = {"Origin": "http://localhost:1"}
            url = engine.url("/monitoring/events")
            async with session.post(url, json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline:
                async with session.get(engine.url("/ready")) as r:
                    ready = await r.json()
                    # The store's check may fail first (no answer while the writer waits).
                    if ready["checks"]["historyWrites"] != "ok":
                        break
                await asyncio.sleep(0.2)
        assert ready["status"] == "not ready", ready
        assert ready["checks"]["historyWrites"] == "failing: OperationalError: database is locked"

        code, err = await stopped(engine)
    finally:
        db.close()

    assert code in (0, 3), err  # written what it could (0), or ended by the stop timer (3)

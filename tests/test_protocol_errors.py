"""Errors aiohttp answers by itself, before any handler or middleware (a request line, header or
body it cannot parse), are JSON in the engine's error shape too: sent as raw bytes to the real
`engagement serve` process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from .conftest import SITE
from .test_process import DEADLINE_S, Engine, serving

EVENTS_HEAD = (
    "POST /monitoring/events HTTP/1.1\r\nHost: engine\r\n"
    f"Origin: {SITE}\r\nContent-Type: application/json\r\n"
)


# One engine for the module: every test leaves it as it found it (its connections closed, no
# state written), and each checks that the engine still answers after its request. Starting
# `engagement serve` for each of the 10 tests cost 2-7 s apiece on the shared machine.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    folder = tmp_path_factory.mktemp("engine")
    async with serving(folder, allowed_origins=[SITE], shutdown_timeout_s=2) as engine:
        yield engine


async def exchange(engine: Engine, *parts: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``parts`` (each after the engine has had the one before), read the answer until the
    engine closes the connection: its status, headers and JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0)
        raw = await asyncio.wait_for(reader.read(), DEADLINE_S)  # to EOF: the engine closes
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", "bad_method", id="not-http"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "bad_method", id="tls"),
        pytest.param(b"GET /health HTTP/9.9\r\nHost: e\r\n\r\n", "bad_request_line", id="version"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: e\r\nno colon\r\n\r\n", "bad_request",
                     id="header-token"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: e\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
                     "line_too_long", id="header-too-long"),
        pytest.param(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: e\r\n\r\n",
                     "line_too_long", id="url-too-long"),
        pytest.param(EVENTS_HEAD.encode() + b"Transfer-Encoding: gzip\r\n\r\n", "bad_request",
                     id="unknown-transfer-encoding"),
        pytest.param(EVENTS_HEAD.encode() + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                     "bad_request", id="two-lengths"),
        pytest.param(EVENTS_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n",
                     "bad_request", id="bad-chunk"),
    ],
)  # fmt: skip
async def test_a_request_aiohttp_cannot_parse_is_answered_in_json(
    engine: Engine, raw: bytes, code: str
):
    status, headers, body = await exchange(engine, raw)

    assert (status, headers["content-type"]) == (400, "application/json; charset=utf-8")
    assert body == {"error": code, "message": body["message"], "details": []}
    assert body["message"].startswith("malformed HTTP request: "), body
    health = b"GET /health HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n"
    assert (await exchange(engine, health))[0] == 200  # and the engine goes on


async def test_a_body_the_client_broke_is_a_400_naming_the_body(engine: Engine):
    head = EVENTS_HEAD + "Content-Encoding: gzip\r\nContent-Length: 16\r\n\r\n"

    status, _, body = await exchange(engine, head.encode(), b"not gzip at all!")

    assert status == 400
    assert body == {
        "error": "invalid_input",
        "message": "the body could not be read: Can not decode content-encoding: gzip",
        "details": [{"field": "body", "message": "Can not decode content-encoding: gzip"}],
    }

"""Signed JSON webhooks to outside systems (decision-makers, third-party media)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Engagement-Signature"
TIMESTAMP_HEADER = "X-Engagement-Timestamp"
WEBHOOK_TIMEOUT_S = 5  # an outside system that takes longer is treated as down


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (timestamp: epoch s)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_request(secret: str | None, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return body, headers


async def post_json(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any], secret: str | None
) -> int:
    """POST once; the HTTP status (raises on network errors)."""
    body, headers = signed_request(secret, payload)
    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
    async with session.post(url, data=body, headers=headers, timeout=timeout) as r:
        return r.status


class Background:
    """Fire-and-forget tasks that are still awaited (or cancelled) when the engine stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
